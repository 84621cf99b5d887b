package mtmd_test

import (
	"context"
	"fmt"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/vlm-go/vlm/gguf"
	"github.com/vlm-go/vlm/internal/testmodel"
	"github.com/vlm-go/vlm/llama"
	"github.com/vlm-go/vlm/mtmd"
)

// chunkView is what a chunk is compared by (Tile is ours, not mtmd's).
func chunkView(chs []mtmd.Chunk) []string {
	out := make([]string, len(chs))
	for i, c := range chs {
		out[i] = fmt.Sprintf("%v n=%d pos=%d id=%s grid=%dx%d tokens=%v", c.Type, c.NTokens, c.NPos, c.ImageID, c.NX, c.NY, c.Tokens)
	}
	return out
}

// Tokenize builds prompts from pieces (text tokenized alone, each image the
// chunks of one marker, cached or not); the result must be exactly what
// mtmd_tokenize makes of the whole prompt.
func TestTokenizeMatchesMtmd(t *testing.T) {
	for _, pt := range testmodel.ProjectorTypes() {
		t.Run(string(pt), func(t *testing.T) {
			p := loadPair(t, pt, gguf.TypeF16)
			m := p.proj.Marker()
			a, err := mtmd.ImageFromGo(testImage(64, 48, 1))
			require.NoError(t, err)
			b, err := mtmd.ImageFromGo(testImage(32, 32, 2))
			require.NoError(t, err)
			cases := []struct {
				text   string
				images []*mtmd.Image
			}{
				{"", nil},
				{"plain text, no image", nil},
				{m, []*mtmd.Image{a}},
				{"Describe " + m + " please.", []*mtmd.Image{a}},
				{m + m, []*mtmd.Image{a, b}},
				{"a " + m + " b " + m + " c", []*mtmd.Image{a, a}},
				{"<|im_start|>user\n" + m + "What is this?<end_of_utterance>\nAssistant:", []*mtmd.Image{b}},
				{"first " + m + " then the legacy marker <__image__> too", []*mtmd.Image{a, b}},
				{"日本語 🙂 " + m + "\n\n" + m + " end", []*mtmd.Image{b, a}},
			}
			cache := mtmd.NewImageCache(0)
			for i, c := range cases {
				for _, special := range []bool{false, true} {
					want, err := p.proj.TokenizeWhole(c.text, c.images, special, true)
					require.NoError(t, err, "case %d", i)
					// Twice: the first may prepare images, the second
					// takes every image from the cache.
					for round := range 2 {
						got, err := p.proj.Tokenize(context.Background(), c.text, c.images, mtmd.TokenizeOptions{AddSpecial: special, ParseSpecial: true, Cache: cache})
						require.NoError(t, err)
						assert.Equal(t, chunkView(want), chunkView(got.All()), "case %d %q add_special=%v round %d", i, c.text, special, round)
						hits, misses := got.CacheStats()
						if round == 1 && len(c.images) > 0 {
							assert.Zero(t, misses, "case %d: every image cached", i)
							assert.Positive(t, hits)
						}
						// Encode every image chunk so the images join the cache.
						for j, ch := range got.All() {
							if ch.Type == mtmd.ChunkImage {
								_, err := p.proj.Encode(context.Background(), got, j)
								require.NoError(t, err)
							}
						}
						require.NoError(t, got.Close())
					}
				}
			}
		})
	}
}

// Cached embeddings are the ones the encoder gives, and evaluating from the
// cache gives the same tokens, for every projector type.
func TestImageCacheSameAnswer(t *testing.T) {
	for _, pt := range testmodel.ProjectorTypes() {
		t.Run(string(pt), func(t *testing.T) {
			p := loadPair(t, pt, gguf.TypeF16)
			img, err := mtmd.ImageFromGo(testImage(40, 40, 5))
			require.NoError(t, err)
			cold, s0 := generate(t, p, img, 8, nil)
			cache := mtmd.NewImageCache(0)
			first, s1 := generate(t, p, img, 8, cache)
			second, s2 := generate(t, p, img, 8, cache)
			assert.Equal(t, cold, first)
			assert.Equal(t, cold, second)
			assert.Equal(t, s0.ImagesEncoded, s1.ImagesEncoded)
			assert.Zero(t, s2.ImagesEncoded, "nothing encoded the second time")
			assert.Equal(t, s1.ImagesEncoded, s2.ImagesCached)

			// Encode returns the cached embeddings: equal to a fresh encode.
			m := p.proj.Marker()
			fresh, err := p.proj.Tokenize(context.Background(), m, []*mtmd.Image{img}, mtmd.TokenizeOptions{})
			require.NoError(t, err)
			defer fresh.Close()
			cached, err := p.proj.Tokenize(context.Background(), m, []*mtmd.Image{img}, mtmd.TokenizeOptions{Cache: cache})
			require.NoError(t, err)
			defer cached.Close()
			for i, ch := range fresh.All() {
				if ch.Type != mtmd.ChunkImage {
					continue
				}
				e1, err := p.proj.Encode(context.Background(), fresh, i)
				require.NoError(t, err)
				e2, err := p.proj.Encode(context.Background(), cached, i)
				require.NoError(t, err)
				require.Equal(t, e1, e2, "chunk %d", i)
				e2[0]++ // a copy: the cache is not changed
			}
			again, _ := generate(t, p, img, 8, cache)
			assert.Equal(t, cold, again)
		})
	}
}

// The same image twice in one prompt is encoded once.
func TestSameImageTwiceEncodedOnce(t *testing.T) {
	p := loadPair(t, testmodel.ProjectorIdefics3, gguf.TypeF16)
	img, err := mtmd.ImageFromGo(testImage(40, 40, 6))
	require.NoError(t, err)
	x, err := p.model.NewContext(llama.ContextOptions{ContextSize: 2048, BatchSize: 256, Threads: 2})
	require.NoError(t, err)
	defer x.Close()
	m := p.proj.Marker()
	chunks, err := p.proj.Tokenize(context.Background(), "a "+m+" b "+m, []*mtmd.Image{img, img}, mtmd.TokenizeOptions{})
	require.NoError(t, err)
	defer chunks.Close()
	hits, misses := chunks.CacheStats()
	assert.Equal(t, 0, hits)
	assert.Equal(t, 1, misses, "one distinct image")
	var progress [][2]int
	_, st, err := p.proj.Eval(context.Background(), x, chunks, mtmd.EvalOptions{Logits: true,
		ImageProgress: func(done, total int) { progress = append(progress, [2]int{done, total}) }})
	require.NoError(t, err)
	per, _ := p.spec.ImageChunks(40, 40)
	require.Len(t, progress, 2*len(per), "one call per image chunk")
	for i, pr := range progress {
		assert.Equal(t, [2]int{i + 1, 2 * len(per)}, pr)
	}
	assert.Equal(t, len(per), st.ImagesEncoded)
	assert.Equal(t, len(per), st.ImagesCached, "the second copy reuses the first's embeddings")
}

// Two projectors never share an entry, even for the same image and file.
func TestImageCacheKeyedByProjector(t *testing.T) {
	mpath, ppath := testmodel.TinyPair(t, testmodel.ProjectorMLP, gguf.TypeF16)
	ctx := context.Background()
	m, err := llama.Load(ctx, mpath, llama.LoadOptions{})
	require.NoError(t, err)
	defer m.Close()
	p1, err := mtmd.Load(ctx, ppath, m, mtmd.Options{Threads: 1})
	require.NoError(t, err)
	defer p1.Close()
	p2, err := mtmd.Load(ctx, ppath, m, mtmd.Options{Threads: 1})
	require.NoError(t, err)
	defer p2.Close()
	img, err := mtmd.ImageFromGo(testImage(32, 32, 7))
	require.NoError(t, err)
	cache := mtmd.NewImageCache(0)
	prepare := func(p *mtmd.Projector) (hits, misses int) {
		ch, err := p.Tokenize(ctx, p.Marker(), []*mtmd.Image{img}, mtmd.TokenizeOptions{Cache: cache})
		require.NoError(t, err)
		defer ch.Close()
		for i, c := range ch.All() {
			if c.Type == mtmd.ChunkImage {
				_, err := p.Encode(ctx, ch, i)
				require.NoError(t, err)
			}
		}
		return ch.CacheStats()
	}
	h, ms := prepare(p1)
	assert.Equal(t, [2]int{0, 1}, [2]int{h, ms})
	assert.True(t, cache.Contains(p1, img))
	assert.False(t, cache.Contains(p2, img), "same bytes, other projector")
	h, ms = prepare(p2)
	assert.Equal(t, [2]int{0, 1}, [2]int{h, ms}, "p2 prepares the image itself")
	h, ms = prepare(p1)
	assert.Equal(t, [2]int{1, 0}, [2]int{h, ms})
	assert.Equal(t, 2, cache.Len())
}

// At its byte bound the cache drops the least recently used image.
func TestImageCacheEvictsLeastRecentlyUsed(t *testing.T) {
	p := loadPair(t, testmodel.ProjectorMLP, gguf.TypeF16)
	ctx := context.Background()
	var imgs []*mtmd.Image
	for i := range 3 {
		img, err := mtmd.ImageFromGo(testImage(32, 32, uint64(20+i)))
		require.NoError(t, err)
		imgs = append(imgs, img)
	}
	use := func(cache *mtmd.ImageCache, img *mtmd.Image) {
		ch, err := p.proj.Tokenize(ctx, p.proj.Marker(), []*mtmd.Image{img}, mtmd.TokenizeOptions{Cache: cache})
		require.NoError(t, err)
		defer ch.Close()
		for i, c := range ch.All() {
			if c.Type == mtmd.ChunkImage {
				_, err := p.proj.Encode(ctx, ch, i)
				require.NoError(t, err)
			}
		}
	}
	probe := mtmd.NewImageCache(0)
	use(probe, imgs[0])
	size := probe.Stats().Bytes
	require.Positive(t, size)

	cache := mtmd.NewImageCache(size * 5 / 2) // room for two images
	use(cache, imgs[0])
	use(cache, imgs[1])
	use(cache, imgs[0]) // 0 is now the most recently used
	use(cache, imgs[2]) // evicts 1
	st := cache.Stats()
	assert.EqualValues(t, 1, st.Evictions)
	assert.Equal(t, 2, st.Entries)
	assert.LessOrEqual(t, st.Bytes, st.MaxBytes)
	assert.True(t, cache.Contains(p.proj, imgs[0]))
	assert.False(t, cache.Contains(p.proj, imgs[1]), "least recently used")
	assert.True(t, cache.Contains(p.proj, imgs[2]))

	small := mtmd.NewImageCache(size - 1)
	use(small, imgs[0])
	assert.Zero(t, small.Len(), "an image larger than the bound is not kept")
	assert.EqualValues(t, 0, small.Stats().Evictions)
}

// Text after a NUL byte reaches the model: the prompt is not cut short at
// the C boundary.
func TestTokenizeKeepsTextAfterNUL(t *testing.T) {
	p := loadPair(t, testmodel.ProjectorMLP, gguf.TypeF16)
	img, err := mtmd.ImageFromGo(testImage(32, 32, 8))
	require.NoError(t, err)
	m := p.proj.Marker()
	whole, err := p.proj.Tokenize(context.Background(), "hello\x00 world "+m+" after", []*mtmd.Image{img}, mtmd.TokenizeOptions{ParseSpecial: true})
	require.NoError(t, err)
	defer whole.Close()
	cut, err := p.proj.Tokenize(context.Background(), "hello", nil, mtmd.TokenizeOptions{ParseSpecial: true})
	require.NoError(t, err)
	defer cut.Close()
	first := whole.Chunk(0)
	want, err := p.model.Vocab().Tokenize("hello\x00 world ", false, true)
	require.NoError(t, err)
	assert.Equal(t, want, first.Tokens)
	assert.Greater(t, len(first.Tokens), cut.NTokens())
	last := whole.Chunk(whole.Len() - 1)
	assert.Equal(t, mtmd.ChunkText, last.Type, "the text after the image is there")
}
