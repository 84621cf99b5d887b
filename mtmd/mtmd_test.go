package mtmd_test

import (
	"bytes"
	"context"
	"hash/crc32"
	"image"
	"image/color"
	"image/jpeg"
	"image/png"
	"io/fs"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/vlm-go/vlm/gguf"
	"github.com/vlm-go/vlm/internal/testmodel"
	"github.com/vlm-go/vlm/llama"
	"github.com/vlm-go/vlm/mtmd"
)

type pair struct {
	spec  testmodel.Spec
	model *llama.Model
	proj  *mtmd.Projector
}

func loadPair(t testing.TB, pt testmodel.ProjectorType, typ gguf.TensorType) pair {
	t.Helper()
	mpath, ppath := testmodel.TinyPair(t, pt, typ)
	spec, err := testmodel.TinySpec(pt, typ)
	require.NoError(t, err)
	ctx := context.Background()
	m, err := llama.Load(ctx, mpath, llama.LoadOptions{})
	require.NoError(t, err)
	t.Cleanup(func() { m.Close() })
	p, err := mtmd.Load(ctx, ppath, m, mtmd.Options{Threads: 2})
	require.NoError(t, err)
	t.Cleanup(func() { p.Close() })
	return pair{spec: spec, model: m, proj: p}
}

// testImage returns a deterministic w×h picture.
func testImage(w, h int, seed uint64) *image.NRGBA {
	r := rand.New(rand.NewPCG(seed, 7))
	img := image.NewNRGBA(image.Rect(0, 0, w, h))
	for y := 0; y < h; y++ {
		for x := 0; x < w; x++ {
			img.SetNRGBA(x, y, color.NRGBA{uint8(x * 255 / w), uint8(y * 255 / h), uint8(r.IntN(256)), 255})
		}
	}
	return img
}

func encodePNG(t testing.TB, img image.Image) []byte {
	var buf bytes.Buffer
	require.NoError(t, png.Encode(&buf, img))
	return buf.Bytes()
}

func TestImageEncodesIntoPredictedEmbeddings(t *testing.T) {
	for _, pt := range testmodel.ProjectorTypes() {
		for _, typ := range []gguf.TensorType{gguf.TypeF32, gguf.TypeF16, gguf.TypeQ8_0} {
			t.Run(string(pt)+"/"+typ.String(), func(t *testing.T) {
				p := loadPair(t, pt, typ)
				for _, size := range [][2]int{{64, 64}, {100, 40}, {17, 90}} {
					img, err := mtmd.ImageFromGo(testImage(size[0], size[1], 1))
					require.NoError(t, err)
					chunks, err := p.proj.Tokenize(context.Background(), "Look: "+p.proj.Marker()+" What is it?", []*mtmd.Image{img}, mtmd.TokenizeOptions{ParseSpecial: true})
					require.NoError(t, err)
					want, err := p.spec.ImageChunks(size[0], size[1])
					require.NoError(t, err)
					var got []int
					var imgIdx []int
					for i, ch := range chunks.All() {
						if ch.Type == mtmd.ChunkImage {
							got = append(got, ch.NTokens)
							imgIdx = append(imgIdx, i)
							assert.Equal(t, img.ID(), ch.ImageID)
						} else {
							assert.Equal(t, ch.NTokens, len(ch.Tokens))
						}
					}
					assert.Equal(t, want, got, "image chunks for %dx%d", size[0], size[1])
					embd, err := p.proj.Encode(context.Background(), chunks, imgIdx[0])
					require.NoError(t, err)
					assert.Len(t, embd, want[0]*p.spec.Text.NEmbd)
					for _, v := range embd {
						require.False(t, math.IsNaN(float64(v)) || math.IsInf(float64(v), 0))
					}
					require.NoError(t, chunks.Close())
				}
			})
		}
	}
}

// generate evaluates a prompt with one image and returns n greedy tokens.
func generate(t testing.TB, p pair, img *mtmd.Image, n int, cache *mtmd.ImageCache) ([]llama.Token, mtmd.EvalStats) {
	t.Helper()
	ctx := context.Background()
	x, err := p.model.NewContext(llama.ContextOptions{ContextSize: 1024, BatchSize: 256, Threads: 2})
	require.NoError(t, err)
	defer x.Close()
	chunks, err := p.proj.Tokenize(ctx, "Describe "+p.proj.Marker()+" please.", []*mtmd.Image{img}, mtmd.TokenizeOptions{AddSpecial: true, ParseSpecial: true, Cache: cache})
	require.NoError(t, err)
	defer chunks.Close()
	pos, stats, err := p.proj.Eval(ctx, x, chunks, mtmd.EvalOptions{Logits: true})
	require.NoError(t, err)
	assert.EqualValues(t, chunks.NPos(), pos)
	b, err := p.model.NewBatch(1, 1)
	require.NoError(t, err)
	defer b.Close()
	var out []llama.Token
	for i := 0; i < n; i++ {
		logits, err := x.Logits(-1)
		require.NoError(t, err)
		best := 0
		for j := range logits {
			require.False(t, math.IsNaN(float64(logits[j])))
			if logits[j] > logits[best] {
				best = j
			}
		}
		out = append(out, llama.Token(best))
		b.Clear()
		require.NoError(t, b.Add(llama.Token(best), pos, true))
		pos++
		require.NoError(t, x.Decode(ctx, b))
	}
	return out, stats
}

func TestEvalAndGenerateIsDeterministic(t *testing.T) {
	for _, pt := range testmodel.ProjectorTypes() {
		t.Run(string(pt), func(t *testing.T) {
			p := loadPair(t, pt, gguf.TypeQ8_0)
			img, err := mtmd.ImageFromGo(testImage(48, 48, 2))
			require.NoError(t, err)
			a, sa := generate(t, p, img, 16, nil)
			b, _ := generate(t, p, img, 16, nil)
			assert.Equal(t, a, b)
			wantChunks, _ := p.spec.ImageChunks(48, 48)
			assert.Equal(t, len(wantChunks), sa.ImagesEncoded)
			want, _ := p.spec.ImageTokens(48, 48)
			assert.Equal(t, want, sa.ImageTokens)
			assert.Positive(t, sa.TextTokens)

			// Another image gives other tokens (the image reaches the model).
			other, err := mtmd.ImageFromGo(testImage(48, 48, 99))
			require.NoError(t, err)
			c, _ := generate(t, p, other, 16, nil)
			assert.NotEqual(t, a, c)
		})
	}
}

func TestImageCacheSkipsEncoding(t *testing.T) {
	p := loadPair(t, testmodel.ProjectorIdefics3, gguf.TypeF16)
	img, err := mtmd.ImageFromGo(testImage(40, 40, 3))
	require.NoError(t, err)
	cache := mtmd.NewImageCache(0)
	a, s1 := generate(t, p, img, 8, cache)
	b, s2 := generate(t, p, img, 8, cache)
	assert.Equal(t, a, b, "cached embeddings give the same tokens")
	wantChunks, _ := p.spec.ImageChunks(40, 40)
	assert.Equal(t, len(wantChunks), s1.ImagesEncoded)
	assert.Zero(t, s1.ImagesCached)
	assert.Zero(t, s2.ImagesEncoded)
	assert.Equal(t, s1.ImagesEncoded, s2.ImagesCached)
	st := cache.Stats()
	assert.EqualValues(t, 1, st.Misses, "one image prepared")
	assert.EqualValues(t, 1, st.Hits, "then found")
	assert.Equal(t, 1, st.Entries)
	assert.Positive(t, st.Bytes)
}

func TestMultipleImages(t *testing.T) {
	p := loadPair(t, testmodel.ProjectorMLP, gguf.TypeF16)
	var imgs []*mtmd.Image
	for i := 0; i < 3; i++ {
		img, err := mtmd.ImageFromGo(testImage(32, 32, uint64(10+i)))
		require.NoError(t, err)
		imgs = append(imgs, img)
	}
	m := p.proj.Marker()
	chunks, err := p.proj.Tokenize(context.Background(), "a "+m+" b "+m+" c "+m, imgs, mtmd.TokenizeOptions{})
	require.NoError(t, err)
	defer chunks.Close()
	per, _ := p.spec.ImageTokens(32, 32)
	assert.Equal(t, 3*per, chunks.ImageTokens())
	ids := []string{}
	for _, ch := range chunks.All() {
		if ch.Type == mtmd.ChunkImage {
			ids = append(ids, ch.ImageID)
		}
	}
	assert.Equal(t, []string{imgs[0].ID(), imgs[1].ID(), imgs[2].ID()}, ids)

	// Marker count must match.
	_, err = p.proj.Tokenize(context.Background(), "only "+m, imgs, mtmd.TokenizeOptions{})
	assert.ErrorIs(t, err, mtmd.ErrMarkerMismatch)
	_, err = p.proj.Tokenize(context.Background(), m+m, imgs[:1], mtmd.TokenizeOptions{})
	assert.ErrorIs(t, err, mtmd.ErrMarkerMismatch)
	_, err = p.proj.Tokenize(context.Background(), m, []*mtmd.Image{nil}, mtmd.TokenizeOptions{})
	assert.ErrorIs(t, err, mtmd.ErrInvalidImage)
}

func TestImageDecoding(t *testing.T) {
	src := testImage(20, 10, 4)
	var jpg bytes.Buffer
	require.NoError(t, jpeg.Encode(&jpg, src, &jpeg.Options{Quality: 95}))
	for name, data := range map[string][]byte{"png": encodePNG(t, src), "jpeg": jpg.Bytes()} {
		img, err := mtmd.DecodeImageBytes(data, mtmd.Limits{})
		require.NoError(t, err, name)
		assert.Equal(t, 20, img.Width())
		assert.Equal(t, 10, img.Height())
	}
	pngImg, _ := mtmd.DecodeImageBytes(encodePNG(t, src), mtmd.Limits{})
	assert.Equal(t, color.RGBA{src.Pix[0], src.Pix[1], src.Pix[2], 255}, pngImg.At(0, 0))
	again, _ := mtmd.ImageFromGo(src)
	assert.Equal(t, pngImg.ID(), again.ID())

	// From a file.
	path := filepath.Join(t.TempDir(), "x.png")
	require.NoError(t, os.WriteFile(path, encodePNG(t, src), 0o644))
	img, err := mtmd.LoadImage(path, mtmd.Limits{})
	require.NoError(t, err)
	assert.Equal(t, pngImg.ID(), img.ID())
	_, err = mtmd.LoadImage(filepath.Join(t.TempDir(), "none.png"), mtmd.Limits{})
	assert.ErrorIs(t, err, fs.ErrNotExist)
}

// hugePNGHeader returns a valid PNG signature and IHDR claiming w×h pixels,
// with no pixel data: a decoder that trusted it would allocate w*h*4 bytes.
func hugePNG(t testing.TB, w, h int) []byte {
	var buf bytes.Buffer
	require.NoError(t, png.Encode(&buf, image.NewGray(image.Rect(0, 0, 1, 1))))
	data := buf.Bytes()
	// IHDR data starts at byte 16: width, height (big endian).
	put := func(off int, v int) {
		data[off], data[off+1], data[off+2], data[off+3] = byte(v>>24), byte(v>>16), byte(v>>8), byte(v)
	}
	put(16, w)
	put(20, h)
	put(29, int(crc32.ChecksumIEEE(data[12:29])))
	return data
}

func TestBadImages(t *testing.T) {
	p := loadPair(t, testmodel.ProjectorMLP, gguf.TypeF16)
	cases := map[string]struct {
		data []byte
		want error
	}{
		"20000x20000": {hugePNG(t, 20000, 20000), mtmd.ErrImageTooLarge},
		"0x0":         {hugePNG(t, 0, 0), mtmd.ErrInvalidImage},
		"random":      {randomBytes(4096, 5), mtmd.ErrUnsupportedFormat},
		"empty":       {nil, mtmd.ErrUnsupportedFormat},
		"truncated":   {encodePNG(t, testImage(64, 64, 1))[:200], mtmd.ErrInvalidImage},
		"wav":         {append([]byte("RIFF\x00\x00\x00\x00WAVEfmt "), make([]byte, 32)...), mtmd.ErrAudioUnsupported},
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			_, err := mtmd.DecodeImageBytes(c.data, mtmd.Limits{})
			assert.ErrorIs(t, err, c.want)
		})
	}
	_, err := mtmd.DecodeImageBytes(encodePNG(t, testImage(100, 100, 1)), mtmd.Limits{MaxPixels: 9999})
	assert.ErrorIs(t, err, mtmd.ErrImageTooLarge)
	_, err = mtmd.DecodeImage(bytes.NewReader(encodePNG(t, testImage(100, 100, 1))), mtmd.Limits{MaxBytes: 100})
	assert.ErrorIs(t, err, mtmd.ErrImageTooLarge)
	_, err = mtmd.ImageFromGo(image.NewRGBA(image.Rect(0, 0, 0, 0)))
	assert.ErrorIs(t, err, mtmd.ErrInvalidImage)
	_, err = mtmd.ImageFromRGB(2, 2, make([]byte, 5))
	assert.ErrorIs(t, err, mtmd.ErrInvalidImage)

	// A 1×1 image is valid and encodes.
	one, err := mtmd.ImageFromGo(testImage(1, 1, 1))
	require.NoError(t, err)
	toks, _ := generate(t, p, one, 2, nil)
	assert.Len(t, toks, 2)
}

func randomBytes(n int, seed uint64) []byte {
	r := rand.New(rand.NewPCG(seed, 1))
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(r.IntN(256))
	}
	return b
}

func TestProjectorMismatchAndBadFiles(t *testing.T) {
	ctx := context.Background()
	p := loadPair(t, testmodel.ProjectorMLP, gguf.TypeF16)

	// A projector whose output width differs from the model's.
	spec, err := testmodel.TinySpec(testmodel.ProjectorMLP, gguf.TypeF16)
	require.NoError(t, err)
	spec.Text.NEmbd, spec.Projector.OutputEmbd = 128, 128
	_, wideProj, err := testmodel.Write(t.TempDir(), spec)
	require.NoError(t, err)
	_, err = mtmd.Load(ctx, wideProj, p.model, mtmd.Options{})
	assert.ErrorIs(t, err, mtmd.ErrProjectorMismatch)

	dir := t.TempDir()
	_, err = mtmd.Load(ctx, filepath.Join(dir, "none.gguf"), p.model, mtmd.Options{})
	assert.ErrorIs(t, err, mtmd.ErrNotFound)
	text := filepath.Join(dir, "text.gguf")
	require.NoError(t, os.WriteFile(text, []byte("hello"), 0o644))
	_, err = mtmd.Load(ctx, text, p.model, mtmd.Options{})
	assert.ErrorIs(t, err, mtmd.ErrInvalidProjector)
	// A text model is not a projector.
	_, err = mtmd.Load(ctx, p.model.Path(), p.model, mtmd.Options{})
	assert.ErrorIs(t, err, mtmd.ErrInvalidProjector)
	_, err = mtmd.Load(ctx, p.model.Path(), p.model, mtmd.Options{Threads: -1})
	assert.ErrorIs(t, err, mtmd.ErrInvalidArgument)

	// A context of another model.
	other := loadPair(t, testmodel.ProjectorMLP, gguf.TypeF16)
	x, err := other.model.NewContext(llama.ContextOptions{ContextSize: 256})
	require.NoError(t, err)
	defer x.Close()
	img, _ := mtmd.ImageFromGo(testImage(8, 8, 1))
	chunks, err := p.proj.Tokenize(ctx, p.proj.Marker(), []*mtmd.Image{img}, mtmd.TokenizeOptions{})
	require.NoError(t, err)
	defer chunks.Close()
	_, _, err = p.proj.Eval(ctx, x, chunks, mtmd.EvalOptions{})
	assert.ErrorIs(t, err, mtmd.ErrProjectorMismatch)
	_, err = other.proj.Encode(ctx, chunks, 0)
	assert.ErrorIs(t, err, mtmd.ErrInvalidArgument)
}

func TestPromptLongerThanContextAndSmallUbatch(t *testing.T) {
	ctx := context.Background()
	p := loadPair(t, testmodel.ProjectorGemma3, gguf.TypeF16)
	img, _ := mtmd.ImageFromGo(testImage(64, 64, 1))
	perImage, _ := p.spec.ImageTokens(64, 64)

	x, err := p.model.NewContext(llama.ContextOptions{ContextSize: 256, BatchSize: 64, UBatchSize: perImage - 1, Threads: 2})
	require.NoError(t, err)
	defer x.Close()
	chunks, err := p.proj.Tokenize(ctx, "x "+p.proj.Marker(), []*mtmd.Image{img}, mtmd.TokenizeOptions{})
	require.NoError(t, err)
	defer chunks.Close()
	_, _, err = p.proj.Eval(ctx, x, chunks, mtmd.EvalOptions{})
	assert.ErrorIs(t, err, mtmd.ErrUBatchTooSmall)

	long := ""
	for i := 0; i < 300; i++ {
		long += "word "
	}
	chunks2, err := p.proj.Tokenize(ctx, long+p.proj.Marker(), []*mtmd.Image{img}, mtmd.TokenizeOptions{})
	require.NoError(t, err)
	defer chunks2.Close()
	_, _, err = p.proj.Eval(ctx, x, chunks2, mtmd.EvalOptions{})
	assert.ErrorIs(t, err, mtmd.ErrContextFull)
	assert.ErrorIs(t, err, llama.ErrPromptTooLong)
}

func TestCancelledEval(t *testing.T) {
	p := loadPair(t, testmodel.ProjectorIdefics3, gguf.TypeF16)
	x, err := p.model.NewContext(llama.ContextOptions{ContextSize: 1024, Threads: 2})
	require.NoError(t, err)
	defer x.Close()
	img, _ := mtmd.ImageFromGo(testImage(64, 64, 1))
	chunks, err := p.proj.Tokenize(context.Background(), "x "+p.proj.Marker(), []*mtmd.Image{img}, mtmd.TokenizeOptions{})
	require.NoError(t, err)
	defer chunks.Close()
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, _, err = p.proj.Eval(ctx, x, chunks, mtmd.EvalOptions{})
	assert.ErrorIs(t, err, mtmd.ErrCancelled)
	assert.ErrorIs(t, err, context.Canceled)
	require.Equal(t, mtmd.ChunkImage, chunks.Chunk(1).Type)
	_, err = p.proj.Encode(ctx, chunks, 1)
	assert.ErrorIs(t, err, mtmd.ErrCancelled)
}

func TestProjectorUseAfterClose(t *testing.T) {
	p := loadPair(t, testmodel.ProjectorMLP, gguf.TypeF16)
	img, _ := mtmd.ImageFromGo(testImage(8, 8, 1))
	chunks, err := p.proj.Tokenize(context.Background(), p.proj.Marker(), []*mtmd.Image{img}, mtmd.TokenizeOptions{})
	require.NoError(t, err)
	// The model closed under the projector stays alive for it.
	require.NoError(t, p.model.Close())
	_, err = p.proj.Encode(context.Background(), chunks, 0)
	require.NoError(t, err)
	require.NoError(t, p.proj.Close())
	require.NoError(t, p.proj.Close())
	_, err = p.proj.Tokenize(context.Background(), p.proj.Marker(), []*mtmd.Image{img}, mtmd.TokenizeOptions{})
	assert.ErrorIs(t, err, mtmd.ErrClosed)
	_, err = p.proj.Encode(context.Background(), chunks, 0)
	assert.ErrorIs(t, err, mtmd.ErrClosed)
	require.NoError(t, chunks.Close())
	require.NoError(t, chunks.Close())
	_, err = mtmd.Load(context.Background(), "x", p.model, mtmd.Options{})
	assert.Error(t, err)
}
