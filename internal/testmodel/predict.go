package testmodel

import (
	"fmt"
	"math"
)

// ImageChunks returns the number of embeddings in each image chunk that
// mtmd_tokenize makes of one width×height image, in the order it emits them:
//   - mlp: one chunk of (image_size/patch_size)² (the image is padded to a
//     square and resized);
//   - gemma3: one chunk of (image_size/patch_size/scale_factor)²;
//   - qwen2vl_merger: one chunk of nx·ny (see [Spec.ImageGrid]): the image
//     keeps its aspect ratio, resized so that each side is a multiple of
//     2·patch_size and the pixels within mtmd's bounds;
//   - idefics3: without preproc_image_size one chunk of
//     (image_size/patch_size)²/scale_factor²; with it, the image is scaled
//     so that its longer side is preproc_image_size, each side rounded up to
//     a multiple of image_size, cut into tiles of image_size (row by row),
//     and followed by the overview image: tiles+1 chunks of that size.
//
// Every embedding has Text.NEmbd values (mtmd_get_output_embd).
func (s Spec) ImageChunks(width, height int) ([]int, error) {
	if err := s.Projector.Validate(); err != nil {
		return nil, err
	}
	if width <= 0 || height <= 0 {
		return nil, fmt.Errorf("testmodel: image size %d×%d is not positive", width, height)
	}
	c := s.Projector
	grid := c.ImageSize / c.PatchSize
	switch c.Type {
	case ProjectorMLP:
		return []int{grid * grid}, nil
	case ProjectorGemma3:
		g := grid / c.ScaleFactor
		return []int{g * g}, nil
	case ProjectorQwen2VL, ProjectorQwen25VL, ProjectorQwen25O, ProjectorQwen3VL:
		nx, ny := qwen2VLGrid(width, height, c.PatchSize)
		return []int{nx * ny}, nil
	}
	per := grid * grid / (c.ScaleFactor * c.ScaleFactor)
	tx, ty := idefics3Tiles(width, height, c.ImageSize, c.PreprocImageSize)
	chunks := make([]int, tx*ty+1)
	for i := range chunks {
		chunks[i] = per
	}
	return chunks, nil
}

// ImageTokens returns the total number of embeddings (KV positions) that one
// width×height image takes: the sum of ImageChunks. Text tokens that mtmd
// adds around images (idefics3's <fake_token_around_image>, <row_R_col_C>,
// "\n"; gemma3's <start_of_image>/<end_of_image>; qwen2vl's
// <|vision_start|>/<|vision_end|>) are not included.
func (s Spec) ImageTokens(width, height int) (int, error) {
	chunks, err := s.ImageChunks(width, height)
	if err != nil {
		return 0, err
	}
	n := 0
	for _, c := range chunks {
		n += c
	}
	return n, nil
}

// ImageGrid returns the grid of image tokens (mtmd_image_tokens_get_nx/ny)
// of each image chunk of one width×height image, in order. For
// qwen2vl_merger it is the resized image's patches per side halved (2×2
// patches merge into one token); for the others, whose tokens form a row,
// it is (tokens, 1).
func (s Spec) ImageGrid(width, height int) (nx, ny []int, err error) {
	chunks, err := s.ImageChunks(width, height)
	if err != nil {
		return nil, nil, err
	}
	for _, n := range chunks {
		x, y := n, 1
		if s.Projector.Type.Qwen() {
			x, y = qwen2VLGrid(width, height, s.Projector.PatchSize)
		}
		nx, ny = append(nx, x), append(ny, y)
	}
	return nx, ny, nil
}

// ImagePositions returns the KV positions that one width×height image
// takes (the sum of mtmd_input_chunk_get_n_pos over its image chunks):
// ImageTokens, except for qwen2vl_merger, whose M-RoPE image is one
// temporal step of max(nx, ny) positions.
func (s Spec) ImagePositions(width, height int) (int, error) {
	nx, ny, err := s.ImageGrid(width, height)
	if err != nil {
		return 0, err
	}
	n := 0
	for i := range nx {
		if s.Projector.Type.Qwen() {
			n += max(nx[i], ny[i])
		} else {
			n += nx[i] * ny[i]
		}
	}
	return n, nil
}

// Qwen2-VL's bounds on tokens per image (clip.cpp's set_limit_image_tokens
// for the qwen mergers, when mtmd is given no other).
const (
	qwen2VLMinTokens = 8
	qwen2VLMaxTokens = 4096
)

// qwen2VLGrid returns the token grid of a w×h image for a qwen2vl_merger
// with patch size ps: clip.cpp's smart resize (calc_size_preserved_ratio
// with min and max pixels, computed in float32 as there), then one token
// per 2×2 patches.
func qwen2VLGrid(w, h, ps int) (nx, ny int) {
	align := 2 * ps
	minPixels, maxPixels := qwen2VLMinTokens*align*align, qwen2VLMaxTokens*align*align
	f := float32(align)
	round := func(x float32) int { return int(math.Round(float64(x/f))) * align }
	ceil := func(x float32) int { return int(math.Ceil(float64(x/f))) * align }
	floor := func(x float32) int { return int(math.Floor(float64(x/f))) * align }
	hb := max(align, round(float32(h)))
	wb := max(align, round(float32(w)))
	if hb*wb > maxPixels {
		beta := float32(math.Sqrt(float64(float32(h*w) / float32(maxPixels))))
		hb = max(align, floor(float32(h)/beta))
		wb = max(align, floor(float32(w)/beta))
	} else if hb*wb < minPixels {
		beta := float32(math.Sqrt(float64(float32(minPixels) / float32(h*w))))
		hb = ceil(float32(h) * beta)
		wb = ceil(float32(w) * beta)
	}
	return wb / align, hb / align
}

// idefics3Tiles returns the tile grid (columns, rows) that clip.cpp's
// idefics3 preprocessing cuts a w×h image into, computed in float32 exactly
// as clip.cpp's calc_size_preserved_ratio does; 0×0 without preproc size.
func idefics3Tiles(w, h, imageSize, longest int) (cols, rows int) {
	if longest <= 0 {
		return 0, 0
	}
	scale := min(float32(longest)/float32(w), float32(longest)/float32(h))
	tw := float32(w) * scale
	th := float32(h) * scale
	ceilTo := func(x float32) int {
		return int(math.Ceil(float64(x/float32(imageSize)))) * imageSize
	}
	rw, rh := ceilTo(tw), ceilTo(th)
	return rw / imageSize, rh / imageSize
}

// TextParams returns the number of parameters of the text model, what
// llama_model_n_params reports (all tensor values, token embeddings
// included). It is 0 for an invalid spec.
func (s Spec) TextParams() uint64 {
	t, _, err := s.plans()
	if err != nil {
		return 0
	}
	return t.params()
}

// ProjectorParams returns the number of values in the projector's tensors;
// 0 for an invalid spec.
func (s Spec) ProjectorParams() uint64 {
	_, p, err := s.plans()
	if err != nil {
		return 0
	}
	return p.params()
}

// ModelFileSize returns the exact size in bytes of the text model file that
// Write produces for s.
func (s Spec) ModelFileSize() (int64, error) {
	t, _, err := s.plans()
	if err != nil {
		return 0, err
	}
	return t.size()
}

// ProjectorFileSize returns the exact size in bytes of the projector file
// that Write produces for s.
func (s Spec) ProjectorFileSize() (int64, error) {
	_, p, err := s.plans()
	if err != nil {
		return 0, err
	}
	return p.size()
}

// Vocabulary returns the text model's vocabulary (tokens, scores, types,
// special ids, chat template); its length is llama_vocab_n_tokens.
func (s Spec) Vocabulary() (*Vocab, error) {
	if err := s.validateShapes(); err != nil {
		return nil, err
	}
	return buildVocab(s.Text)
}
