package mtmd_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"image"
	"image/color"
	"image/jpeg"
	"runtime"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/vlm-go/vlm/internal/imagetest"
	"github.com/vlm-go/vlm/mtmd"
)

func encodeJPEG(t *testing.T, img image.Image) []byte {
	var buf bytes.Buffer
	require.NoError(t, jpeg.Encode(&buf, img, &jpeg.Options{Quality: 90}))
	return buf.Bytes()
}

// noisy fills a w × h image of the kind new makes with varied pixels.
func noisy[T interface {
	image.Image
	Set(x, y int, c color.Color)
}](img T) T {
	b := img.Bounds()
	for y := range b.Dy() {
		for x := range b.Dx() {
			img.Set(x, y, color.NRGBA{uint8(x * 7), uint8(y * 13), uint8(x ^ y), uint8(128 + x%128)})
		}
	}
	return img
}

// TestProbeImageBoundsTheDecoder: ProbeImage's DecodeBytes, read from the
// header alone, is at least what decoding the image allocates (measured
// with runtime.MemStats), and not far above it, for each kind of PNG and
// JPEG Go's decoders treat differently, reduced or not.
func TestProbeImageBoundsTheDecoder(t *testing.T) {
	const w, h = 800, 600
	r := image.Rect(0, 0, w, h)
	pal := color.Palette{color.Black, color.White, color.RGBA{200, 10, 10, 255}}
	paletted := image.NewPaletted(r, pal)
	for i := range paletted.Pix {
		paletted.Pix[i] = uint8(i % 3)
	}
	cases := []struct {
		name   string
		data   []byte
		format string
		perPx  int64 // the decoder's bytes a pixel
	}{
		{"png rgb8", encodePNG(t, opaque(noisy(image.NewRGBA(r)))), "png", 4},
		{"png nrgba8", encodePNG(t, noisy(image.NewNRGBA(r))), "png", 4},
		{"png gray8", encodePNG(t, noisy(image.NewGray(r))), "png", 4}, // counted as if transparent (NRGBA)
		{"png nrgba16", encodePNG(t, noisy(image.NewNRGBA64(r))), "png", 8},
		{"png paletted", encodePNG(t, paletted), "png", 1},
		{"jpeg 4:2:0", encodeJPEG(t, noisy(image.NewRGBA(r))), "jpeg", 0},
		{"jpeg gray", encodeJPEG(t, noisy(image.NewGray(r))), "jpeg", 0},
	}
	for _, tc := range cases {
		for _, reducePx := range []int{0, 100 * 75} {
			t.Run(fmt.Sprintf("%s/reduce=%d", tc.name, reducePx), func(t *testing.T) {
				limits := mtmd.Limits{ReducePixels: reducePx}
				info, err := mtmd.ProbeImage(tc.data, limits)
				require.NoError(t, err)
				assert.Equal(t, tc.format, info.Format)
				assert.Equal(t, w, info.Width)
				assert.Equal(t, h, info.Height)
				kept := int64(w * h)
				if reducePx > 0 {
					kept = int64(reducePx)
				}
				assert.Equal(t, 3*kept, info.KeptBytes)
				if tc.perPx > 0 {
					conv := 7 * int64(w*h)
					if reducePx > 0 {
						conv = 3 * kept
					}
					assert.Equal(t, tc.perPx*w*h+conv, info.DecodeBytes)
				}
				var before, after runtime.MemStats
				runtime.GC()
				runtime.ReadMemStats(&before)
				img, err := mtmd.DecodeImageBytes(tc.data, limits)
				runtime.ReadMemStats(&after)
				require.NoError(t, err)
				assert.Equal(t, int(kept), img.Width()*img.Height())
				allocated := int64(after.TotalAlloc - before.TotalAlloc)
				const state = 256 << 10 // the decoder's own state: tables, rows, zlib window
				assert.LessOrEqual(t, allocated, info.DecodeBytes+state, "allocated %d, counted %d", allocated, info.DecodeBytes)
				assert.Greater(t, 5*allocated, info.DecodeBytes, "counted %d, over 5 × the %d allocated", info.DecodeBytes, allocated)
			})
		}
	}
}

// opaque makes every pixel of img opaque (PNG then writes RGB, which Go
// decodes as *image.RGBA).
func opaque(img *image.RGBA) *image.RGBA {
	for i := 3; i < len(img.Pix); i += 4 {
		img.Pix[i] = 0xff
	}
	return img
}

// TestReduceAverages: a reduced image's pixels are the averages of their
// boxes, its size keeps the aspect ratio within ReducePixels, and an image
// with fewer pixels is left as it is.
func TestReduceAverages(t *testing.T) {
	src := image.NewNRGBA(image.Rect(0, 0, 4, 2))
	vals := []uint8{0, 100, 10, 20, 50, 150, 30, 40} // row-major gray levels
	for i, v := range vals {
		src.SetNRGBA(i%4, i/4, color.NRGBA{v, v, 255 - v, 255})
	}
	img, err := mtmd.DecodeImageBytes(encodePNG(t, src), mtmd.Limits{ReducePixels: 2})
	require.NoError(t, err)
	require.Equal(t, 2, img.Width())
	require.Equal(t, 1, img.Height())
	assert.Equal(t, color.RGBA{75, 75, 180, 255}, img.At(0, 0)) // (0+100+50+150)/4
	assert.Equal(t, color.RGBA{25, 25, 230, 255}, img.At(1, 0)) // (10+20+30+40)/4

	img, err = mtmd.DecodeImageBytes(encodePNG(t, src), mtmd.Limits{ReducePixels: 8})
	require.NoError(t, err)
	assert.Equal(t, 4, img.Width(), "not reduced at its size")
	assert.Equal(t, color.RGBA{100, 100, 155, 255}, img.At(1, 0))

	wide := imagetest.SolidPNG(7000, 100, color.RGBA{1, 2, 3, 255})
	img, err = mtmd.DecodeImageBytes(wide, mtmd.Limits{ReducePixels: 70_000})
	require.NoError(t, err)
	assert.Equal(t, 2213, img.Width()) // 7000·√0.1
	assert.Equal(t, 31, img.Height())
	assert.LessOrEqual(t, img.Width()*img.Height(), 70_000)
}

// TestReduce49Mpx: a solid 7000 × 7000 PNG is reduced to 1 Mpx of the same
// colour, and decoding it allocates what ProbeImage counted (the decoder's
// RGBA and the small result, no full-size copy).
func TestReduce49Mpx(t *testing.T) {
	if testing.Short() {
		t.Skip("decodes a 49-megapixel image")
	}
	c := color.RGBA{10, 200, 30, 255}
	data := imagetest.SolidPNG(7000, 7000, c)
	limits := mtmd.Limits{ReducePixels: mtmd.MinImagePixels}
	info, err := mtmd.ProbeImage(data, limits)
	require.NoError(t, err)
	assert.EqualValues(t, 4*49_000_000+3*1024*1024, info.DecodeBytes)
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	img, err := mtmd.DecodeImageContext(context.Background(), data, limits, mtmd.NewMemoryBudget(256<<20))
	runtime.ReadMemStats(&after)
	require.NoError(t, err)
	assert.Equal(t, 1024, img.Width())
	assert.Equal(t, 1024, img.Height())
	for _, p := range [][2]int{{0, 0}, {512, 700}, {1023, 1023}} {
		assert.Equal(t, c, img.At(p[0], p[1]))
	}
	assert.LessOrEqual(t, after.TotalAlloc-before.TotalAlloc, uint64(info.DecodeBytes+1<<20))
}

// TestMemoryBudget: decodes past the budget wait in order and go on as
// bytes come back; a wait ends with ErrBudgetBusy at the context's
// deadline, ErrCancelled when cancelled; more than the whole budget fails
// at once with an *ImageMemoryError naming the figures.
func TestMemoryBudget(t *testing.T) {
	b := mtmd.NewMemoryBudget(100)
	ctx := context.Background()
	info := func(n int64) mtmd.ImageInfo {
		return mtmd.ImageInfo{Format: "png", Width: 10, Height: 10, DecodeBytes: n}
	}
	require.NoError(t, b.Acquire(ctx, info(60)))
	assert.EqualValues(t, 60, b.InUse())

	// A second 60 waits until the deadline.
	dctx, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
	defer cancel()
	start := time.Now()
	err := b.Acquire(dctx, info(60))
	assert.ErrorIs(t, err, mtmd.ErrBudgetBusy)
	assert.ErrorIs(t, err, context.DeadlineExceeded)
	assert.GreaterOrEqual(t, time.Since(start), 50*time.Millisecond)
	assert.Contains(t, err.Error(), "60 bytes of the image memory budget (60 of 100 in use)")

	// Cancelled: not busy, cancelled.
	cctx, ccancel := context.WithCancel(ctx)
	go func() { time.Sleep(20 * time.Millisecond); ccancel() }()
	err = b.Acquire(cctx, info(60))
	assert.ErrorIs(t, err, mtmd.ErrCancelled)
	assert.False(t, errors.Is(err, mtmd.ErrBudgetBusy))

	// Waiters are served in order once bytes come back; a small one does
	// not overtake a large one that waits.
	order := make(chan int64, 2)
	for _, n := range []int64{70, 10} {
		go func() {
			assert.NoError(t, b.Acquire(ctx, info(n)))
			order <- n
		}()
		time.Sleep(20 * time.Millisecond)
	}
	select {
	case n := <-order:
		t.Fatalf("%d bytes granted while 60 of 100 are held and 70 wait first", n)
	case <-time.After(50 * time.Millisecond):
	}
	b.Release(60)
	assert.ElementsMatch(t, []int64{70, 10}, []int64{<-order, <-order})
	assert.EqualValues(t, 80, b.InUse())
	b.Release(70)
	b.Release(10)
	assert.EqualValues(t, 0, b.InUse())

	// More than the budget: at once.
	err = b.Acquire(ctx, mtmd.ImageInfo{Format: "png", Width: 7000, Height: 7000, DecodeBytes: 196_000_000})
	var me *mtmd.ImageMemoryError
	require.ErrorAs(t, err, &me)
	assert.ErrorIs(t, err, mtmd.ErrImageTooLarge)
	assert.EqualValues(t, 100, me.Limit)
	assert.Equal(t, "png image 7000×7000 (49000000 pixels) needs 196000000 bytes to decode, over the budget limit of 100 bytes: mtmd: image too large", err.Error())
}

// TestImageMemoryErrorNamesTheFigures: a request's error says how many
// images, what they need at once, the largest's size and cost, and the limit.
func TestImageMemoryErrorNamesTheFigures(t *testing.T) {
	err := &mtmd.ImageMemoryError{Scope: "request", Images: 8,
		Largest: mtmd.ImageInfo{Format: "png", Width: 7000, Height: 7000, DecodeBytes: 199_145_728, KeptBytes: 3 << 20},
		Bytes:   199_145_728 + 7*(3<<20), Limit: 128 << 20}
	assert.ErrorIs(t, err, mtmd.ErrImageTooLarge)
	assert.Equal(t, "8 images need 221165824 bytes of decoded pixels at once (the largest, a png image 7000×7000 (49000000 pixels), 199145728 bytes to decode; the others 22020096 bytes once reduced), over the request limit of 134217728 bytes: mtmd: image too large", err.Error())
}
