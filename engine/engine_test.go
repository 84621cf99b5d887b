package engine_test

import (
	"context"
	"fmt"
	"image"
	"image/color"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/vlm-go/vlm/engine"
	"github.com/vlm-go/vlm/gguf"
	"github.com/vlm-go/vlm/internal/testmodel"
	"github.com/vlm-go/vlm/llama"
	"github.com/vlm-go/vlm/mtmd"
	"github.com/vlm-go/vlm/sampler"
)

type pair struct {
	model *llama.Model
	proj  *mtmd.Projector
	cache *mtmd.ImageCache
}

func loadPair(t testing.TB, pt testmodel.ProjectorType) pair {
	t.Helper()
	mpath, ppath := testmodel.TinyPair(t, pt, gguf.TypeF16)
	ctx := context.Background()
	m, err := llama.Load(ctx, mpath, llama.LoadOptions{})
	require.NoError(t, err)
	t.Cleanup(func() { m.Close() })
	p, err := mtmd.Load(ctx, ppath, m, mtmd.Options{Threads: 1})
	require.NoError(t, err)
	t.Cleanup(func() { p.Close() })
	return pair{model: m, proj: p, cache: mtmd.NewImageCache(0)}
}

func newEngine(t testing.TB, p pair, opts engine.Options) *engine.Engine {
	t.Helper()
	if opts.Threads == 0 {
		opts.Threads = 1
	}
	if opts.SequenceLength == 0 {
		opts.SequenceLength = 512
	}
	if opts.FlashAttn == llama.FlashAttentionAuto {
		opts.FlashAttn = llama.FlashAttentionOff
	}
	e, err := engine.New(p.model, p.proj, opts)
	require.NoError(t, err)
	t.Cleanup(func() { e.Close() })
	return e
}

// picture is a deterministic w×h picture; shade makes pictures differ.
func picture(w, h int, shade uint8) *mtmd.Image {
	img := image.NewNRGBA(image.Rect(0, 0, w, h))
	for y := 0; y < h; y++ {
		for x := 0; x < w; x++ {
			img.SetNRGBA(x, y, color.NRGBA{uint8(x * 255 / w), shade, uint8((y*255/h + int(shade)*7) % 256), 255})
		}
	}
	m, err := mtmd.ImageFromGo(img)
	if err != nil {
		panic(err)
	}
	return m
}

// ask is one test request: a picture (nil: none) and a question.
type ask struct {
	img      *mtmd.Image
	question string
}

func asks(n int) []ask {
	out := make([]ask, n)
	for i := range out {
		out[i] = ask{img: picture(24+8*(i%3), 24+4*(i%2), uint8(40*i)), question: fmt.Sprintf("Question %d: what is shown here?", i)}
		if i%5 == 4 {
			out[i].img = nil // a text-only request among them
		}
	}
	return out
}

func (p pair) tokenize(t testing.TB, a ask) *mtmd.Chunks {
	t.Helper()
	text, imgs := a.question, []*mtmd.Image(nil)
	if a.img != nil {
		text, imgs = p.proj.Marker()+"\n"+a.question, []*mtmd.Image{a.img}
	}
	ch, err := p.proj.Tokenize(context.Background(), "<|im_start|>user\n"+text+"<|im_end|>\n<|im_start|>assistant\n", imgs,
		mtmd.TokenizeOptions{AddSpecial: true, ParseSpecial: true, Cache: p.cache})
	require.NoError(t, err)
	return ch
}

// alone answers a with the single-sequence path (mtmd.Eval, llama.Generate)
// on a context of its own.
func (p pair) alone(t testing.TB, a ask, maxTokens int) []llama.Token {
	t.Helper()
	x, err := p.model.NewContext(llama.ContextOptions{ContextSize: 512, Threads: 1, FlashAttn: llama.FlashAttentionOff})
	require.NoError(t, err)
	defer x.Close()
	ch := p.tokenize(t, a)
	defer ch.Close()
	next, _, err := p.proj.Eval(context.Background(), x, ch, mtmd.EvalOptions{Logits: true})
	require.NoError(t, err)
	smp, err := sampler.New(p.model, sampler.Config{})
	require.NoError(t, err)
	defer smp.Close()
	var res llama.GenerateResult
	gen := llama.Generate(context.Background(), x, smp, llama.GenerateOptions{Pos: next, MaxTokens: maxTokens})
	for _, err := range gen.Tokens() {
		require.NoError(t, err)
	}
	res = gen.Result()
	return res.Tokens
}

func submitAll(t testing.TB, e *engine.Engine, p pair, list []ask, maxTokens int) []engine.Result {
	t.Helper()
	streams := make([]*engine.Stream, len(list))
	for i, a := range list {
		s, err := e.Submit(context.Background(), engine.Request{Chunks: p.tokenize(t, a), MaxTokens: maxTokens})
		require.NoError(t, err)
		streams[i] = s
	}
	out := make([]engine.Result, len(list))
	done := make(chan int)
	for i, s := range streams {
		go func() { out[i] = s.Wait(); done <- i }()
	}
	for range streams {
		<-done
	}
	return out
}

// TestConcurrentEqualsAlone: N concurrent greedy requests with different
// pictures and questions each produce exactly the tokens of the same
// request alone on the single-sequence path; again with prefix reuse (the
// second round starts from what the first left in the cache).
func TestConcurrentEqualsAlone(t *testing.T) {
	const maxTokens = 12
	for _, pt := range testmodel.ProjectorTypes() {
		t.Run(string(pt), func(t *testing.T) {
			p := loadPair(t, pt)
			list := asks(16)
			want := make([][]llama.Token, len(list))
			for i, a := range list {
				want[i] = p.alone(t, a, maxTokens)
			}
			distinct := map[string]bool{}
			for _, w := range want {
				require.NotEmpty(t, w)
				distinct[fmt.Sprint(w)] = true
			}
			require.Greater(t, len(distinct), 4, "the requests' answers should differ")
			for _, n := range []int{1, 4, 8, 16} {
				t.Run(fmt.Sprint(n), func(t *testing.T) {
					e := newEngine(t, p, engine.Options{Sequences: n})
					for round, reuse := range []string{"fresh", "prefix reuse"} {
						got := submitAll(t, e, p, list[:n], maxTokens)
						for i, r := range got {
							require.NoError(t, r.Err, "request %d (%s)", i, reuse)
							require.Equal(t, want[i], r.Tokens, "request %d of %d (%s): %+v", i, n, reuse, r)
							if round == 1 {
								require.Positive(t, r.CachedTokens, "request %d reused nothing", i)
							}
						}
					}
					st := e.Stats()
					require.Positive(t, st.ReusedTokens)
					if n > 1 {
						// Batched: far fewer steps than tokens decoded.
						require.Less(t, st.Steps, st.TokensDecoded/2, "%+v", st)
					}
				})
			}
		})
	}
}

// TestConcurrentQuestionsAboutOnePicture: four requests about one new
// picture, submitted at once, encode it once between them.
func TestConcurrentQuestionsAboutOnePicture(t *testing.T) {
	p := loadPair(t, testmodel.ProjectorIdefics3)
	e := newEngine(t, p, engine.Options{Sequences: 4})
	img := picture(64, 48, 77)
	var list []ask
	for i := range 4 {
		list = append(list, ask{img: img, question: fmt.Sprintf("Question %d about the one picture?", i)})
	}
	got := submitAll(t, e, p, list, 4)
	encoded, cached := 0, 0
	for i, r := range got {
		require.NoError(t, r.Err, "request %d", i)
		encoded += r.ImagesEncoded
		cached += r.ImagesCached
	}
	chunks := got[0].ImagesEncoded + got[0].ImagesCached
	require.Positive(t, chunks)
	require.Equal(t, chunks, encoded, "the picture's %d chunks are encoded once in all (encoded %d, cached %d)", chunks, encoded, cached)
}
