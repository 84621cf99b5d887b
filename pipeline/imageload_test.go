package pipeline

import (
	"context"
	"errors"
	"image/color"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/vlm-go/vlm/internal/imagetest"
	"github.com/vlm-go/vlm/mtmd"
)

// TestImageMemoryBusy: while other decodes hold the image memory, a
// request's image waits; at its deadline it fails with ErrImageMemoryBusy
// naming the figures, and without a deadline it goes on once the bytes come
// back, reduced to ReducePixels.
func TestImageMemoryBusy(t *testing.T) {
	if testing.Short() {
		t.Skip("decodes a 49-megapixel image")
	}
	big := imagetest.SolidPNG(7000, 7000, color.RGBA{200, 100, 50, 255})
	budget := mtmd.NewMemoryBudget(256 << 20)
	l := imageLoader{limits: mtmd.Limits{ReducePixels: mtmd.MinImagePixels}, budget: budget, maxBytes: 256 << 20, cache: newDecodedCache(64 << 20)}
	held := mtmd.ImageInfo{Format: "png", Width: 7000, Height: 7000, DecodeBytes: 200 << 20}
	require.NoError(t, budget.Acquire(context.Background(), held)) // another request's decode

	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	_, err := l.load(ctx, []Image{ImageBytes(big)})
	require.ErrorIs(t, err, ErrImageMemoryBusy)
	assert.ErrorIs(t, err, context.DeadlineExceeded)
	assert.False(t, errors.Is(err, ErrImageTooLarge))
	assert.Contains(t, err.Error(), "pipeline: image 1 of 1: png image 7000×7000: waited")
	assert.Contains(t, err.Error(), "bytes of the image memory budget (209715200 of 268435456 in use)")

	done := make(chan error, 1)
	var imgs []*mtmd.Image
	go func() {
		var err error
		imgs, err = l.load(context.Background(), []Image{ImageBytes(big)})
		done <- err
	}()
	select {
	case err := <-done:
		t.Fatalf("decoded while the budget was held: %v", err)
	case <-time.After(100 * time.Millisecond):
	}
	budget.Release(held.DecodeBytes)
	require.NoError(t, <-done)
	assert.Equal(t, 1024, imgs[0].Width())
	assert.Equal(t, color.RGBA{200, 100, 50, 255}, imgs[0].At(500, 500))
	assert.EqualValues(t, 0, budget.InUse())

	// A cancelled request stops before decoding.
	cctx, ccancel := context.WithCancel(context.Background())
	ccancel()
	_, err = l.load(cctx, []Image{ImageBytes(imagetest.SolidPNG(64, 64, color.RGBA{1, 2, 3, 255}))})
	assert.ErrorIs(t, err, mtmd.ErrCancelled)
}

// TestRequestImageBound: a request's images are checked together from
// their headers before anything is decoded: the largest one's decoding
// plus the others reduced over the bound fails with an ImageMemoryError
// naming the figures; under it they decode.
func TestRequestImageBound(t *testing.T) {
	big := imagetest.SolidPNG(7000, 7000, color.RGBA{1, 0, 0, 255})
	var imgs []Image
	for range 8 {
		imgs = append(imgs, ImageBytes(big))
	}
	budget := mtmd.NewMemoryBudget(1 << 30)
	l := imageLoader{limits: mtmd.Limits{ReducePixels: mtmd.MinImagePixels}, budget: budget, maxBytes: 128 << 20}
	_, err := l.load(context.Background(), imgs)
	var me *mtmd.ImageMemoryError
	require.ErrorAs(t, err, &me)
	assert.ErrorIs(t, err, ErrImageTooLarge)
	assert.Equal(t, "request", me.Scope)
	assert.Equal(t, 8, me.Images)
	assert.EqualValues(t, 4*49_000_000+3<<20, me.Largest.DecodeBytes) // RGBA, and the 1024×1024 RGB it is reduced to
	assert.EqualValues(t, 4*49_000_000+8*3<<20, me.Bytes)
	assert.Equal(t, "pipeline: 8 images need 221165824 bytes of decoded pixels at once (the largest, a png image 7000×7000 (49000000 pixels), 199145728 bytes to decode; the others 22020096 bytes once reduced), over the request limit of 134217728 bytes: mtmd: image too large", err.Error())
	assert.EqualValues(t, 0, budget.InUse())

	// One image alone over the bound.
	l.maxBytes = 100 << 20
	_, err = l.load(context.Background(), imgs[:1])
	require.ErrorAs(t, err, &me)
	assert.Equal(t, "pipeline: png image 7000×7000 (49000000 pixels) needs 199145728 bytes to decode, over the request limit of 104857600 bytes: mtmd: image too large", err.Error())
}
