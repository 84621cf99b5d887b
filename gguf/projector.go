package gguf

import (
	"errors"
	"fmt"
	"slices"
)

// Errors of Projector.CheckModel and Projector.CheckUBatch.
var (
	ErrProjectorMismatch = errors.New("gguf: projector does not fit the text model")
	ErrUBatchTooSmall    = errors.New("gguf: n_ubatch smaller than the tokens of one image")
)

// Projector types clip.cpp knows (PROJECTOR_TYPE_NAMES in clip-impl.h).
var projectorTypes = map[string]bool{
	"mlp": true, "ldp": true, "ldpv2": true, "resampler": true, "adapter": true,
	"qwen2vl_merger": true, "qwen2.5vl_merger": true, "qwen3vl_merger": true,
	"gemma3": true, "idefics3": true, "pixtral": true, "ultravox": true,
	"internvl": true, "llama4": true, "qwen2a": true, "glma": true, "qwen2.5o": true,
	"voxtral": true, "lfm2": true, "kimivl": true, "lightonocr": true,
	"cogvlm": true, "janus_pro": true, "glm4v": true,
}

// Projector summarizes a vision projector (mmproj) as clip.cpp reads it.
type Projector struct {
	// Type is the projector type as clip.cpp resolves it: clip.projector_type,
	// else clip.vision.projector_type, else "mlp"; "qwen2.5o" reads as
	// "qwen2.5vl_merger", and an mlp with mm.3.weight as "mlp_norm".
	Type            string
	ImageSize       uint32 // clip.vision.image_size: images are resized to it
	PatchSize       uint32 // clip.vision.patch_size
	EmbeddingLength uint32 // clip.vision.embedding_length: the vision tower's width
	ProjectionDim   uint32 // clip.vision.projection_dim as stored (not always the output size)
	BlockCount      uint32 // clip.vision.block_count
	// MergeFactor is how many patches per side merge into one output token
	// (clip's n_merge: clip.vision.projector.scale_factor for idefics3,
	// 4 by default for gemma3, 2 by default for the qwen mergers); 1 if none.
	MergeFactor uint32
	// PreprocImageSize is clip.vision.preproc_image_size (idefics3 tiles), 0 if absent.
	PreprocImageSize uint32
	// OutputEmbd is the size of each output embedding, which must equal the
	// text model's embedding length; 0 where this package does not know
	// how to derive it for the type.
	OutputEmbd uint64
	// TokensPerImage is the number of output tokens for one image (one
	// tile) of ImageSize×ImageSize; 0 where not known for the type.
	TokensPerImage int
	// NonCausal reports that mtmd decodes the image tokens with non-causal
	// attention (gemma3): the whole image must fit in one micro-batch, so
	// n_ubatch must be at least TokensPerImage or llama.cpp aborts.
	NonCausal bool
	ImageMean [3]float32 // clip.vision.image_mean: per-channel mean subtracted from pixels in [0, 1]
	ImageStd  [3]float32 // clip.vision.image_std: per-channel divisor after the mean
}

// resolveProjectorType mirrors clip_model_loader::load_hparams for vision.
func resolveProjectorType(f *File) string {
	t, _ := f.String("clip.projector_type")
	if t == "" {
		t, _ = f.String("clip.vision.projector_type")
		if t == "" {
			t = "mlp"
		}
	}
	if t == "qwen2.5o" {
		t = "qwen2.5vl_merger"
	}
	if t == "mlp" {
		if _, ok := f.Tensor("mm.3.weight"); ok {
			t = "mlp_norm"
		}
	}
	return t
}

// ProjectorInfo checks the projector as ValidateProjector does and returns
// the parameters callers need to size prompts and batches: tokens per image,
// the output embedding size to compare with the text model, whether images
// need n_ubatch >= their tokens. It fails with the same errors as
// ValidateProjector.
func ProjectorInfo(f *File) (*Projector, error) {
	c := &checker{f: f}
	c.container()
	p := c.projectorKeys()
	if p != nil {
		c.projectorTensors(p)
	}
	if err := c.err(); err != nil {
		return nil, err
	}
	return p, nil
}

// ValidateProjector checks a vision projector (mmproj) for what makes the
// pinned clip.cpp/mtmd abort, crash or fail: the container; the keys
// clip.cpp reads, with the exact types its getters assert; a known
// projector type; image_mean/image_std of at least 3 f32; values it divides
// by; use_gelu and use_silu not both true; and for the types of
// FullyValidatedProjectorTypes (mlp, idefics3, gemma3, the Qwen mergers)
// the tensors their graphs use, with their shapes and types. For other
// projector types only keys are checked. It returns nil or the problems
// found, joined (at most 32), each a *ValidationError.
func ValidateProjector(f *File) error {
	_, err := ProjectorInfo(f)
	return err
}

// projectorKeys checks the metadata and returns the summary, or nil when a
// key the summary needs is unusable.
func (c *checker) projectorKeys() *Projector {
	const v = "clip.vision."
	// clip.cpp reads every key with a getter that asserts the type: a
	// wrong type aborts. A missing required key throws (a clean error),
	// except image_mean/std, which are GGML_ASSERTed.
	c.str("general.name", false, true, false)
	c.str("general.description", false, true, false)
	c.boolean("clip.has_audio_encoder", false, true, false)
	hasVision, ok := c.boolean("clip.has_vision_encoder", true, true, false)
	if ok && !hasVision {
		c.add(ErrBadValue, false, "clip.has_vision_encoder", "", "false: no vision encoder")
	}
	c.str("clip.projector_type", false, true, false)
	c.str(v+"projector_type", false, true, false)
	typ := resolveProjectorType(c.f)
	if !projectorTypes[typ] && typ != "mlp_norm" {
		c.add(ErrUnknownProjector, false, "clip.projector_type", "", "%q", typ)
	}

	p := &Projector{Type: typ, MergeFactor: 1}
	var okAll = true
	need := func(key string) uint32 {
		x, ok := c.u32(key, true, true, false)
		okAll = okAll && ok
		return x
	}
	p.EmbeddingLength = need(v + "embedding_length")
	nHead := need(v + "attention.head_count")
	need(v + "feed_forward_length")
	p.BlockCount = need(v + "block_count")
	p.ProjectionDim = need(v + "projection_dim")
	if eps, ok := c.f32(v+"attention.layer_norm_epsilon", true, true, false); !ok {
		okAll = false
	} else if eps < 0 || !finite(eps) {
		c.add(ErrBadValue, true, v+"attention.layer_norm_epsilon", "", "%v: a norm epsilon must be a finite number >= 0", eps)
		okAll = false
	}
	p.ImageSize = need(v + "image_size")
	p.PatchSize = need(v + "patch_size")

	c.u32(v+"image_crop_resolution", false, true, false)
	c.typed("clip.minicpmv_version", ValueInt32, false, true, false)
	c.u32("clip.minicpmv_query_num", false, true, false)
	gelu, _ := c.boolean("clip.use_gelu", false, true, false)
	silu, _ := c.boolean("clip.use_silu", false, true, false)
	if gelu && silu {
		c.add(ErrBadValue, false, "clip.use_gelu", "", "clip.use_gelu and clip.use_silu are both true")
	}
	c.str(v+"mm_patch_merge_type", false, true, false)
	for _, key := range []string{v + "image_grid_pinpoints", v + "feature_layer"} {
		kv, ok := c.f.Get(key)
		if !ok {
			continue
		}
		// read as raw int32 memory of gguf_get_arr_n elements
		if !kv.IsArray() || (kv.ArrayType != ValueInt32 && kv.ArrayType != ValueUint32) {
			c.add(ErrKeyType, true, key, "", "type %s, want arr[i32]", kv.TypeName())
		} else if key == v+"image_grid_pinpoints" && kv.Len()%2 != 0 {
			// clip.cpp reads the last pair's height one past the vector:
			// an out-of-bounds read (observed to run, with a height from
			// whatever memory follows), not an abort
			c.add(ErrBadValue, false, key, "", "%d elements, want (width, height) pairs", kv.Len())
		} else if key == v+"image_grid_pinpoints" && kv.Len() > 2*maxPinpoints {
			c.add(ErrBadValue, false, key, "", "%d resolutions, at most %d", kv.Len()/2, maxPinpoints)
		} else {
			for _, x := range int32s(kv.Value) {
				if key == v+"image_grid_pinpoints" && (x <= 0 || x > maxImageSide) {
					c.add(ErrBadValue, false, key, "", "resolution %d: want 1..%d", x, maxImageSide)
					break
				}
			}
		}
	}
	for i, key := range []string{v + "image_mean", v + "image_std"} {
		kv, ok := c.f.Get(key)
		dst := &p.ImageMean
		if i == 1 {
			dst = &p.ImageStd
		}
		switch vals, isF32 := kv.Value.([]float32); {
		case !ok:
			c.add(ErrMissingKey, true, key, "", "want arr[f32] of 3")
			okAll = false
		case !isF32 || len(vals) < 3:
			c.add(ErrKeyType, true, key, "", "type %s of %d, want arr[f32] of 3", kv.TypeName(), kv.Len())
			okAll = false
		default:
			copy(dst[:], vals)
			for _, x := range vals[:3] {
				if !finite(x) || (i == 1 && x == 0) {
					c.add(ErrBadValue, false, key, "", "%v: every pixel would become NaN or infinite", vals[:3])
					okAll = false
					break
				}
			}
		}
	}

	// merge factor as clip.cpp sets n_merge per type
	scale, hasScale := c.u32(v+"projector.scale_factor", false, true, false)
	spatial, hasSpatial := c.u32(v+"spatial_merge_size", false, true, false)
	p.PreprocImageSize, _ = c.u32(v+"preproc_image_size", false, true, false)
	_, hasWA := c.u32(v+"n_wa_pattern", false, true, false)
	switch typ {
	case "idefics3", "internvl", "llama4", "lfm2", "kimivl":
		// n_merge defaults to 0 and is divided by
		if !hasScale || scale == 0 {
			c.add(ErrBadValue, true, v+"projector.scale_factor", "", "a %s projector needs a scale factor >= 1", typ)
			okAll = false
		}
		p.MergeFactor = scale
	case "gemma3":
		p.MergeFactor = 4
		if hasScale {
			if scale == 0 {
				c.add(ErrBadValue, true, v+"projector.scale_factor", "", "0")
				okAll = false
			}
			p.MergeFactor = scale
		}
	case typeQwen2VL, typeQwen25VL, typeQwen3VL:
		// the graphs merge 2×2 whatever the key says (see qwenKeys)
		p.MergeFactor = qwenMerge
		c.qwenKeys(p)
		if typ == typeQwen25VL && !hasWA {
			c.add(ErrMissingKey, false, v+"n_wa_pattern", "", "qwen2.5vl_merger needs it")
		}
	case "glm4v":
		p.MergeFactor = 2
		if hasSpatial {
			if spatial == 0 {
				c.add(ErrBadValue, true, v+"spatial_merge_size", "", "0")
				okAll = false
			}
			p.MergeFactor = spatial
		}
	case "pixtral", "lightonocr":
		if hasSpatial && spatial > 0 {
			p.MergeFactor = spatial
		}
	}

	if !okAll {
		return nil
	}
	// Preprocessing sizes: clip.cpp resizes into int-indexed float
	// buffers of width × height × 3 (65536 overflows into a SIGSEGV,
	// 16384 takes gigabytes and most of a minute before failing).
	for _, kv := range []struct {
		key string
		val uint32
	}{{v + "image_size", p.ImageSize}, {v + "preproc_image_size", p.PreprocImageSize}} {
		if kv.val > maxImageSide && !isQwenProjector(typ) { // the Qwen mergers resize by pixel counts, not by image_size
			c.add(ErrBadValue, false, kv.key, "", "%d pixels, at most %d", kv.val, maxImageSide)
			okAll = false
		}
	}
	if fl, ok := c.f.Get(v + "feature_layer"); ok && llavaGraph[typ] {
		// clip_graph_llava runs the encoder up to the deepest feature
		// layer: one past the block count indexes past model.layers
		// (SIGSEGV). Negative layers are never matched and so ignored
		// (the graph then runs as without the key), and the other
		// graphs do not read the key.
		for _, x := range int32s(fl.Value) {
			if x >= 0 && uint32(x) > p.BlockCount {
				c.add(ErrBadValue, true, v+"feature_layer", "", "layer %d of a %d-layer encoder", x, p.BlockCount)
				okAll = false
				break
			}
		}
	}
	if !okAll {
		return nil
	}
	// values clip.cpp divides by. The Qwen mergers do not use image_size
	// (images keep their size within pixel bounds; the warm-up image is
	// sized by tokens): any value runs (observed: TestUncheckedQwenProjectorsCrash
	// in package mtmd).
	if p.PatchSize == 0 || (p.ImageSize < p.PatchSize && !isQwenProjector(typ)) {
		c.add(ErrBadValue, true, v+"patch_size", "", "patch size %d for image size %d", p.PatchSize, p.ImageSize)
		return nil
	}
	if nHead == 0 || p.EmbeddingLength%nHead != 0 {
		c.add(ErrBadValue, true, v+"attention.head_count", "", "%d heads for embedding length %d", nHead, p.EmbeddingLength)
		return nil
	}
	if kv, ok := c.f.Get(v + "image_grid_pinpoints"); ok {
		pts := int32s(kv.Value)
		for i := 0; i+1 < len(pts); i += 2 {
			if tiles := (int64(pts[i]) / int64(p.ImageSize)) * (int64(pts[i+1]) / int64(p.ImageSize)); tiles > maxGridTiles {
				c.add(ErrBadValue, false, v+"image_grid_pinpoints", "", "resolution %d×%d makes %d tiles of %d pixels, at most %d", pts[i], pts[i+1], tiles, p.ImageSize, maxGridTiles)
				return nil
			}
		}
	}
	side := p.ImageSize / p.PatchSize
	n := int(side) * int(side)
	m := int(p.MergeFactor)
	switch typ {
	case "mlp", "mlp_norm", "janus_pro":
		p.TokensPerImage = n
	case "idefics3", "gemma3":
		// the graph merges per side, clip_n_output_tokens divides the
		// total: they only agree (else GGML_ABORT) when the side divides
		if side%p.MergeFactor != 0 {
			c.add(ErrBadValue, true, v+"projector.scale_factor", "", "%d patches per side not divisible by the merge factor %d", side, p.MergeFactor)
			return nil
		}
		p.TokensPerImage = n / (m * m)
	case "internvl", "llama4":
		p.TokensPerImage = n / (m * m)
	case typeQwen2VL, typeQwen25VL, typeQwen3VL, "glm4v":
		s := int(p.ImageSize / (2 * p.PatchSize))
		p.TokensPerImage = s * s
	}
	p.NonCausal = typ == "gemma3"
	return p
}

// Bounds on preprocessing sizes.
const (
	maxImageSide = 8192 // pixels per side of image_size, preproc_image_size and grid resolutions
	maxPinpoints = 64   // image_grid_pinpoints resolutions
	maxGridTiles = 256  // tiles one grid resolution cuts an image into
)

// llavaGraph are the projector types clip.cpp builds with clip_graph_llava,
// the one graph that reads clip.vision.feature_layer.
var llavaGraph = map[string]bool{"mlp": true, "mlp_norm": true, "ldp": true, "ldpv2": true, "glm_edge": true}

// int32s returns an i32 or u32 array as int32s.
func int32s(v any) []int32 {
	switch v := v.(type) {
	case []int32:
		return v
	case []uint32:
		out := make([]int32, len(v))
		for i, x := range v {
			out[i] = int32(min(x, 1<<31-1))
		}
		return out
	}
	return nil
}

// projectorTensors checks the tensors of the vision tower and projector for
// the fully validated types, and derives OutputEmbd.
func (c *checker) projectorTensors(p *Projector) {
	if p.Type == "mlp_norm" {
		if t, ok := c.f.Tensor("mm.3.bias"); ok {
			p.OutputEmbd = t.Dim(0)
		}
		return
	}
	if !slices.Contains(fullyValidatedProjectors, p.Type) {
		return
	}
	if isQwenProjector(p.Type) {
		c.qwenTensors(p)
		return
	}
	ve := uint64(p.EmbeddingLength)
	ps := uint64(p.PatchSize)
	side := uint64(p.ImageSize / p.PatchSize)
	nPos := side * side
	if p.Type == "mlp" {
		if _, ok := c.f.Tensor("v.class_embd"); ok {
			nPos++
		}
	}
	// Tensors clip.cpp loads as optional but its graph uses: a missing one
	// is a null pointer dereference; a wrong shape a ggml assertion.
	if t, ok := c.checkTensor(tensorCheck{"v.patch_embd.weight", []uint64{ps, ps, 3, ve}, true, false}, true, true); ok {
		if t.Type != TypeF32 && t.Type != TypeF16 {
			c.add(ErrTensorShape, true, "", t.Name, "type %s, want f32 or f16", t.Type)
		}
	}
	if t, ok := c.f.Tensor("v.position_embd.weight"); !ok {
		// clip_graph_llava takes rows of it unchecked (SIGSEGV);
		// clip_graph_siglip (idefics3, gemma3) adds it only when present
		// and runs without (observed: TestUncheckedOtherProjectorsCrash)
		if p.Type == "mlp" {
			c.add(ErrMissingTensor, true, "", "v.position_embd.weight", "want shape [%d %d]", ve, nPos)
		}
	} else if len(t.Shape) > 2 || t.Dim(0) != ve || t.Dim(1) < nPos {
		c.add(ErrTensorShape, true, "", t.Name, "shape %v, want [%d %d]", t.Shape, ve, nPos)
	}
	if uint64(p.BlockCount)*3 > uint64(len(c.f.Tensors)) {
		// each layer has at least attn_out, ffn_up and ffn_down
		c.add(ErrMissingTensor, false, "", fmt.Sprintf("v.blk.%d.attn_out.weight", p.BlockCount-1), "%d layers but only %d tensors", p.BlockCount, len(c.f.Tensors))
		return
	}
	for i := 0; i < int(p.BlockCount); i++ {
		b := func(s string) string { return fmt.Sprintf("v.blk.%d.%s", i, s) }
		if _, fused := c.f.Tensor(b("attn_qkv.weight")); !fused {
			for _, s := range []string{"attn_q.weight", "attn_k.weight", "attn_v.weight"} {
				c.checkTensor(tensorCheck{b(s), []uint64{ve, ve}, true, false}, true, true)
			}
		}
		// required by the loader: a clean error when missing
		c.checkTensor(tensorCheck{b("attn_out.weight"), []uint64{ve, ve}, true, false}, false, true)
		for _, s := range []string{"ln1.weight", "ln1.bias", "ln2.weight", "ln2.bias",
			"attn_q.bias", "attn_k.bias", "attn_v.bias", "attn_out.bias"} {
			c.vecTensor(b(s), ve, false, false, false)
		}
		up, okUp := c.f.Tensor(b("ffn_up.weight"))
		down, okDown := c.f.Tensor(b("ffn_down.weight"))
		if !okUp {
			c.add(ErrMissingTensor, false, "", b("ffn_up.weight"), "")
		}
		if !okDown {
			c.add(ErrMissingTensor, false, "", b("ffn_down.weight"), "")
		}
		if okUp && okDown {
			// [v, f] and [f, v], or the legacy swapped naming clip.cpp
			// swaps back when ffn_down's ne0 is the embedding length
			f := up.Dim(1)
			if down.Dim(0) == ve {
				f = down.Dim(1)
				up, down = down, up
			}
			if !sameShape(up.Shape, []uint64{ve, f}) || !sameShape(down.Shape, []uint64{f, ve}) {
				c.add(ErrTensorShape, true, "", b("ffn_up.weight"), "ffn_up %v and ffn_down %v do not form [%d f] and [f %d]", up.Shape, down.Shape, ve, ve)
			}
		}
	}
	for _, s := range []string{"v.pre_ln.weight", "v.pre_ln.bias", "v.post_ln.weight", "v.post_ln.bias"} {
		c.vecTensor(s, ve, false, false, false)
	}

	switch p.Type {
	case "mlp":
		in := ve
		if _, ok := c.f.Get("clip.vision.feature_layer"); ok {
			in = 0 // feature layers are concatenated: width not checked
		}
		w0, ok0 := c.f.Tensor("mm.0.weight")
		switch {
		case !ok0:
			c.add(ErrMissingTensor, true, "", "mm.0.weight", "want shape [%d H]", ve)
		case len(w0.Shape) > 2 || (in != 0 && w0.Dim(0) != in):
			c.add(ErrTensorShape, true, "", "mm.0.weight", "shape %v, want [%d H]", w0.Shape, ve)
			ok0 = false
		}
		if ok0 {
			h := w0.Dim(1)
			c.checkTensor(tensorCheck{"mm.0.bias", []uint64{h}, true, false}, true, true)
			w2, ok2 := c.f.Tensor("mm.2.weight")
			switch {
			case !ok2:
				// clip_n_mmproj_embd dereferences mm.2.weight
				c.add(ErrMissingTensor, true, "", "mm.2.weight", "want shape [%d n_embd]", h)
			case len(w2.Shape) > 2 || w2.Dim(0) != h:
				c.add(ErrTensorShape, true, "", "mm.2.weight", "shape %v, want [%d n_embd]", w2.Shape, h)
			default:
				p.OutputEmbd = w2.Dim(1)
				c.checkTensor(tensorCheck{"mm.2.bias", []uint64{p.OutputEmbd}, true, false}, true, true)
			}
		}
	case "idefics3":
		s := uint64(p.MergeFactor)
		w, ok := c.f.Tensor("mm.model.fc.weight")
		switch {
		case !ok:
			c.add(ErrMissingTensor, false, "", "mm.model.fc.weight", "want shape [%d n_embd]", ve*s*s)
		case len(w.Shape) > 2 || w.Dim(0) != ve*s*s:
			c.add(ErrTensorShape, true, "", w.Name, "shape %v, want [%d n_embd] (embedding length × scale factor²)", w.Shape, ve*s*s)
		default:
			p.OutputEmbd = w.Dim(1)
		}
	case "gemma3":
		w, ok := c.f.Tensor("mm.input_projection.weight")
		switch {
		case !ok:
			c.add(ErrMissingTensor, false, "", "mm.input_projection.weight", "want shape [n_embd %d]", ve)
		case len(w.Shape) > 2 || w.Dim(1) != ve:
			c.add(ErrTensorShape, true, "", w.Name, "shape %v, want [n_embd %d]", w.Shape, ve)
		case w.Type != TypeF32 && w.Type != TypeF16:
			// transposed and made contiguous: the pinned ggml copies
			// quantized blocks of a transposed tensor wrongly, and the
			// embeddings are garbage (observed:
			// TestGemma3QuantizedInputProjection in package mtmd)
			c.add(ErrTensorShape, false, "", w.Name, "type %s, want f32 or f16 (transposed in the graph: quantized weights give garbage)", w.Type)
		default:
			p.OutputEmbd = w.Dim(0)
		}
		c.checkTensor(tensorCheck{"mm.soft_emb_norm.weight", []uint64{ve}, true, false}, false, true)
	}
}

// vecTensor checks a 1-D norm weight or bias of n values that a vision
// graph multiplies or adds (ggml_mul/ggml_add) onto n-wide rows: missing
// (when required), mis-shaped or of another type than f32 (when f32Only;
// the CPU kernels abort on f16 there). A shape ggml cannot broadcast trips
// its assertion (abort-class); a length that divides n is broadcast (its
// values repeated): the graph runs and computes garbage (observed for both:
// TestUncheckedQwenProjectorsCrash in package mtmd).
func (c *checker) vecTensor(name string, n uint64, required, abortMissing, f32Only bool) bool {
	t, ok := c.f.Tensor(name)
	if !ok {
		if required {
			c.add(ErrMissingTensor, abortMissing, "", name, "want shape [%d]", n)
		}
		return false
	}
	if !sameShape(t.Shape, []uint64{n}) {
		// (more dimensions with a first that divides n broadcast too, over
		// rows whose count depends on the image: garbage, or an assertion
		// for other images)
		broadcast := t.Dim(0) > 0 && n%t.Dim(0) == 0
		if broadcast {
			c.add(ErrTensorShape, false, "", name, "shape %v, want [%d] (ggml would repeat its %d values)", t.Shape, n, t.Dim(0))
		} else {
			c.add(ErrTensorShape, true, "", name, "shape %v, want [%d]", t.Shape, n)
		}
		return false
	}
	if f32Only && t.Type != TypeF32 {
		c.add(ErrTensorShape, true, "", name, "type %s, want f32", t.Type)
		return false
	}
	return true
}

// CheckInputWidth checks that the projector's output size equals the
// text model's input embedding width n (llama_model_n_embd_inp, what
// mtmd_init_from_file compares; mtmd.Load checks it this way). It passes
// when OutputEmbd is unknown (0): mtmd then tells.
func (p *Projector) CheckInputWidth(n int) error {
	if p.OutputEmbd == 0 || uint64(n) == p.OutputEmbd {
		return nil
	}
	return fmt.Errorf("%w: the projector produces %d-wide embeddings, the model takes %d", ErrProjectorMismatch, p.OutputEmbd, n)
}

// CheckModel is CheckInputWidth with the width read from the model file:
// {arch}.embedding_length × (1 + {arch}.n_deepstack_layers), as
// llama_model_n_embd_inp computes it.
func (p *Projector) CheckModel(model *File) error {
	if p.OutputEmbd == 0 {
		return nil
	}
	arch := model.Architecture()
	n, ok := model.Uint32(arch + ".embedding_length")
	if !ok {
		return fmt.Errorf("%w: the model has no u32 %s.embedding_length", ErrProjectorMismatch, arch)
	}
	// llama_hparams::n_embd_inp: Qwen3-VL's text model takes the
	// deepstack layers' features beside each embedding
	ds, _ := model.Uint32(arch + ".n_deepstack_layers")
	return p.CheckInputWidth(int(n) * (1 + int(ds)))
}

// CheckUBatch checks that a context with micro-batch size nUBatch can decode
// this projector's images: with non-causal image attention (gemma3) the
// pinned llama.cpp aborts when an image has more tokens than n_ubatch.
func (p *Projector) CheckUBatch(nUBatch int) error {
	if p.NonCausal && nUBatch < p.TokensPerImage {
		return fmt.Errorf("%w: %s images take %d tokens, n_ubatch is %d", ErrUBatchTooSmall, p.Type, p.TokensPerImage, nUBatch)
	}
	return nil
}
