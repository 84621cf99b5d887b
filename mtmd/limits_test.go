package mtmd_test

import (
	"bytes"
	"image"
	"image/png"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/vlm-go/vlm/mtmd"
)

// TestMaxPixelsAboveTheDefault: an image over DefaultMaxPixels decodes when
// Limits.MaxPixels allows it (the old code checked the default again after
// decoding and refused it), and is refused under the default.
func TestMaxPixelsAboveTheDefault(t *testing.T) {
	if testing.Short() {
		t.Skip("decodes a 50-megapixel image")
	}
	const w, h = 7100, 7100 // 50.41 M pixels
	require.Greater(t, w*h, mtmd.DefaultMaxPixels)
	g := image.NewGray(image.Rect(0, 0, w, h))
	g.Pix[0], g.Pix[len(g.Pix)-1] = 200, 100
	var buf bytes.Buffer
	require.NoError(t, (&png.Encoder{CompressionLevel: png.BestSpeed}).Encode(&buf, g))
	g = nil

	_, err := mtmd.DecodeImageBytes(buf.Bytes(), mtmd.Limits{})
	assert.ErrorIs(t, err, mtmd.ErrImageTooLarge)

	img, err := mtmd.DecodeImageBytes(buf.Bytes(), mtmd.Limits{MaxPixels: w * h})
	require.NoError(t, err)
	assert.Equal(t, w, img.Width())
	assert.Equal(t, h, img.Height())
	assert.EqualValues(t, 200, img.At(0, 0).G)
	assert.EqualValues(t, 100, img.At(w-1, h-1).B)
}
