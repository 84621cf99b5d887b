// Package demo provides vlm's built-in demo model: a small SmolVLM-style
// text model and vision projector with RANDOM weights, written on first
// use into the user's cache directory (a fraction of a second) and reused
// after. Its answers are gibberish; its mechanics — loading, images,
// chat template, streaming, batching — are real, so programs and examples
// run on a fresh machine with no download.
//
//	model, proj, err := demo.Pair(ctx)
//	p, err := pipeline.New(ctx, model, proj, pipeline.Options{})
//	resp, err := p.Run(ctx, pipeline.Input{Text: "What is this?",
//		Images: []pipeline.Image{pipeline.ImageOf(demo.Picture())}}, pipeline.GenerateOptions{})
package demo

import (
	"context"
	"image"
	"image/color"

	"github.com/vlm-go/vlm/internal/testmodel"
)

// Pair returns the paths of the demo model and its projector, writing them
// into the user's cache directory (vlm/models) when they are not there.
func Pair(ctx context.Context) (modelPath, projectorPath string, err error) {
	return testmodel.DemoPair(ctx)
}

// Picture is a colourful 64×64 picture to ask the demo model about.
func Picture() image.Image {
	img := image.NewNRGBA(image.Rect(0, 0, 64, 64))
	for y := 0; y < 64; y++ {
		for x := 0; x < 64; x++ {
			img.SetNRGBA(x, y, color.NRGBA{uint8(x * 4), uint8(y * 4), uint8((x + y) * 2), 255})
		}
	}
	return img
}
