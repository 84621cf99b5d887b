package pipeline

import (
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

func (im Image) load(limits mtmd.Limits, cache *decodedCache) (*mtmd.Image, error) {
	switch {
	case im.decoded != nil:
		return im.decoded, nil
	case im.img != nil:
		return mtmd.ImageFromGo(im.img)
	case im.data != nil:
		return cache.decode(im.data, limits)
	case im.path != "":
		data, err := readImageFile(im.path, limits)
		if err != nil {
			return nil, err
		}
		img, err := cache.decode(data, limits)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", im.path, err)
		}
		return img, nil
	}
	return nil, fmt.Errorf("empty pipeline.Image: %w", mtmd.ErrInvalidImage)
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
