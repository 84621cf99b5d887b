package pipeline

import (
	"context"
	"crypto/sha256"
	"fmt"
	"image"

	"github.com/vlm-go/vlm/mtmd"
	"github.com/vlm-go/vlm/template"
)

// Image is an image given to the pipeline: a file, encoded bytes, a Go
// image.Image, or an already decoded *mtmd.Image. Make one with ImageFile,
// ImageBytes, ImageOf or ImageDecoded.
type Image struct {
	path    string
	data    []byte
	img     image.Image
	decoded *mtmd.Image
}

// ImageFile is the image in the file at path (PNG, JPEG, GIF, WebP, BMP, TIFF).
func ImageFile(path string) Image { return Image{path: path} }

// ImageBytes is an encoded image in memory.
func ImageBytes(data []byte) Image { return Image{data: data} }

// ImageOf is a Go image.
func ImageOf(img image.Image) Image { return Image{img: img} }

// ImageDecoded is an image decoded by package mtmd.
func ImageDecoded(img *mtmd.Image) Image { return Image{decoded: img} }

// pendingImage is an image of a request to decode from encoded bytes.
type pendingImage struct {
	i    int    // its index in the request
	path string // its file, for errors; empty for bytes
	data []byte
	key  [sha256.Size]byte // hash of data, when the pipeline caches decoded images
	info mtmd.ImageInfo
}

// named prefixes err with the image's file, if it has one.
func (pi *pendingImage) named(err error) error {
	if pi.path == "" {
		return err
	}
	return fmt.Errorf("%s: %w", pi.path, err)
}

// loadImages decodes a request's images within the pipeline's image
// memory. The headers come first (nothing is decoded yet): the largest
// image's decoding plus all the images once reduced must fit in
// Options.MaxImageBytes, else the request fails with an
// *mtmd.ImageMemoryError. Then the images decode one at a time, each
// taking its decode bytes from the image memory budget (waiting for them
// within ctx) and reduced to what the projector uses before the next.
func (p *Pipeline) loadImages(ctx context.Context, imgs []Image) ([]*mtmd.Image, error) {
	return imageLoader{limits: p.limits, cache: p.decoded, budget: p.budget, maxBytes: p.maxImageBytes}.load(ctx, imgs)
}

// imageLoader is what decoding a request's images takes: limits (with
// ReducePixels set), the decoded-image cache and the budget (nil: none),
// and the request's bound (0: none).
type imageLoader struct {
	limits   mtmd.Limits
	cache    *decodedCache
	budget   *mtmd.MemoryBudget
	maxBytes int64
}

func (l imageLoader) load(ctx context.Context, imgs []Image) ([]*mtmd.Image, error) {
	out := make([]*mtmd.Image, len(imgs))
	wrap := func(i int, err error) error {
		return fmt.Errorf("pipeline: image %d of %d: %w", i+1, len(imgs), err)
	}
	var pending []pendingImage
	var kept int64 // bytes of the request's images once decoded and reduced
	for i, im := range imgs {
		switch {
		case im.decoded != nil:
			out[i] = im.decoded
		case im.img != nil:
			d, err := mtmd.ImageFromGo(im.img)
			if err != nil {
				return nil, wrap(i, err)
			}
			out[i] = d
		case im.data != nil || im.path != "":
			pi := pendingImage{i: i, path: im.path, data: im.data}
			if pi.data == nil {
				var err error
				if pi.data, err = readImageFile(im.path, l.limits); err != nil {
					return nil, wrap(i, err)
				}
			}
			if l.cache != nil {
				pi.key = sha256.Sum256(pi.data)
				if d, ok := l.cache.get(pi.key); ok {
					out[i] = d
					kept += 3 * int64(d.Width()) * int64(d.Height())
					continue
				}
			}
			info, err := mtmd.ProbeImage(pi.data, l.limits)
			if err != nil {
				return nil, wrap(i, pi.named(err))
			}
			pi.info = info
			kept += info.KeptBytes
			pending = append(pending, pi)
		default:
			return nil, wrap(i, fmt.Errorf("empty pipeline.Image: %w", mtmd.ErrInvalidImage))
		}
	}
	if len(pending) == 0 {
		return out, nil
	}
	largest := pending[0].info
	for _, pi := range pending[1:] {
		if pi.info.DecodeBytes > largest.DecodeBytes {
			largest = pi.info
		}
	}
	if need := largest.DecodeBytes + kept - largest.KeptBytes; l.maxBytes > 0 && need > l.maxBytes {
		return nil, fmt.Errorf("pipeline: %w", &mtmd.ImageMemoryError{Scope: "request", Images: len(pending), Largest: largest, Bytes: need, Limit: l.maxBytes})
	}
	for _, pi := range pending {
		if err := ctx.Err(); err != nil {
			return nil, wrap(pi.i, fmt.Errorf("%w (%w)", mtmd.ErrCancelled, err))
		}
		if d, ok := l.cache.get(pi.key); ok { // the same bytes earlier in the request
			out[pi.i] = d
			continue
		}
		d, err := mtmd.DecodeProbed(ctx, pi.data, pi.info, l.limits, l.budget)
		if err != nil {
			return nil, wrap(pi.i, pi.named(err))
		}
		l.cache.put(pi.key, d)
		out[pi.i] = d
	}
	return out, nil
}

// Input is one request: images and text, or a whole chat.
type Input struct {
	// Text is the user's text. With no Messages, the input becomes one
	// user message: the images first, then the text. Every byte reaches
	// the model, NUL bytes included (they are tokenized like any byte).
	Text string
	// Images are the input's images, in order. With Messages, each image
	// part of the messages takes the next image.
	Images []Image
	// Messages is a whole chat (system, user and assistant turns) with
	// image parts; the answer continues it.
	Messages []template.Message
	// Prompt is raw text given to the model as it is, without the chat
	// template (what OpenAI's /v1/completions takes): the answer continues
	// it. The model's BOS token is added when the model asks for one and
	// the prompt does not start with it. It excludes Text, Messages and
	// Images.
	Prompt string
}

// rawRole marks the one message that holds Input.Prompt: render passes
// its text through untouched.
const rawRole = "\x00raw"

// messages returns the chat the input stands for.
func (in Input) messages() ([]template.Message, error) {
	if in.Prompt != "" {
		if in.Text != "" || len(in.Messages) > 0 || len(in.Images) > 0 {
			return nil, fmt.Errorf("pipeline: Input.Prompt excludes Text, Messages and Images: %w", ErrInvalidInput)
		}
		return []template.Message{{Role: rawRole, Text: in.Prompt}}, nil
	}
	if len(in.Messages) > 0 {
		if in.Text != "" {
			return nil, fmt.Errorf("pipeline: Input has both Text and Messages: %w", ErrInvalidInput)
		}
		if n := template.CountImages(in.Messages); n != len(in.Images) {
			return nil, fmt.Errorf("pipeline: the messages have %d image parts, the input %d images: %w", n, len(in.Images), ErrInvalidInput)
		}
		return in.Messages, nil
	}
	if in.Text == "" && len(in.Images) == 0 {
		return nil, fmt.Errorf("pipeline: empty input: %w", ErrInvalidInput)
	}
	return []template.Message{userMessage(in.Text, len(in.Images))}, nil
}

// userMessage is a user turn with n images followed by text.
func userMessage(text string, n int) template.Message {
	parts := make([]template.Part, 0, n+1)
	for i := 0; i < n; i++ {
		parts = append(parts, template.Image())
	}
	if text != "" {
		parts = append(parts, template.Text(text))
	}
	return template.User(parts...)
}
