package pipeline_test

import (
	"context"
	"image"
	"image/color"
	"strings"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/vlm-go/vlm/gguf"
	"github.com/vlm-go/vlm/internal/testmodel"
	"github.com/vlm-go/vlm/llama"
	"github.com/vlm-go/vlm/mtmd"
	"github.com/vlm-go/vlm/pipeline"
	"github.com/vlm-go/vlm/sampler"
	"github.com/vlm-go/vlm/template"
)

func picture(w, h int, shade uint8) image.Image {
	img := image.NewNRGBA(image.Rect(0, 0, w, h))
	for y := 0; y < h; y++ {
		for x := 0; x < w; x++ {
			img.SetNRGBA(x, y, color.NRGBA{uint8(x * 255 / w), shade, uint8(y * 255 / h), 255})
		}
	}
	return img
}

func newPipeline(t testing.TB, pt testmodel.ProjectorType, opts pipeline.Options) (*pipeline.Pipeline, string, string) {
	t.Helper()
	mp, pp := testmodel.TinyPair(t, pt, gguf.TypeF16)
	if opts.Threads == 0 {
		opts.Threads = 2
	}
	if opts.SequenceLength == 0 {
		opts.SequenceLength = 1024
	}
	p, err := pipeline.New(context.Background(), mp, pp, opts)
	require.NoError(t, err)
	t.Cleanup(func() { p.Close() })
	return p, mp, pp
}

// TestPipelineEqualsLowLevelGreedy renders, tokenizes, evaluates and
// generates by hand with llama, mtmd, template and sampler, and checks that
// the pipeline produces the same tokens.
func TestPipelineEqualsLowLevelGreedy(t *testing.T) {
	for _, pt := range testmodel.ProjectorTypes() {
		t.Run(string(pt), func(t *testing.T) {
			p, mp, pp := newPipeline(t, pt, pipeline.Options{})
			img := picture(40, 30, 80)
			const question = "What is in the picture?"
			resp, err := p.Run(context.Background(), pipeline.Input{Text: question, Images: []pipeline.Image{pipeline.ImageOf(img)}},
				pipeline.GenerateOptions{MaxTokens: 12})
			require.NoError(t, err)

			// The same by hand.
			ctx := context.Background()
			m, err := llama.Load(ctx, mp, llama.LoadOptions{})
			require.NoError(t, err)
			defer m.Close()
			proj, err := mtmd.Load(ctx, pp, m, mtmd.Options{Threads: 2})
			require.NoError(t, err)
			defer proj.Close()
			src, _ := m.ChatTemplate()
			tmpl, err := template.Compile(src)
			require.NoError(t, err)
			v := m.Vocab()
			bos, _ := v.Text(v.BOS())
			eos, _ := v.Text(v.EOS())
			msgs := []template.Message{template.User(template.Image(), template.Text(question))}
			prompt, err := tmpl.Prompt(msgs, template.Options{AddGenerationPrompt: true, BOSToken: bos, EOSToken: eos, Marker: proj.Marker()})
			require.NoError(t, err)
			full, err := tmpl.Render(msgs, template.Options{AddGenerationPrompt: true, BOSToken: bos, EOSToken: eos})
			require.NoError(t, err)
			assert.Equal(t, full, resp.Prompt)
			mimg, err := mtmd.ImageFromGo(img)
			require.NoError(t, err)
			chunks, err := proj.Tokenize(ctx, prompt, []*mtmd.Image{mimg}, mtmd.TokenizeOptions{
				AddSpecial: v.AddBOS() && !strings.HasPrefix(prompt, bos), ParseSpecial: true})
			require.NoError(t, err)
			defer chunks.Close()
			x, err := m.NewContext(llama.ContextOptions{ContextSize: 1024, Threads: 2, FlashAttn: llama.FlashAttentionOff}) // as the pipeline on a CPU
			require.NoError(t, err)
			defer x.Close()
			pos, _, err := proj.Eval(ctx, x, chunks, mtmd.EvalOptions{Logits: true})
			require.NoError(t, err)
			smp, err := sampler.New(m, sampler.Config{})
			require.NoError(t, err)
			defer smp.Close()
			var want []llama.Token
			var wantText string
			gen := llama.Generate(ctx, x, smp, llama.GenerateOptions{Pos: pos, MaxTokens: 12})
			for tok, err := range gen.Tokens() {
				require.NoError(t, err)
				if tok.ID >= 0 {
					want = append(want, tok.ID)
				}
				wantText += tok.Text
			}
			assert.Equal(t, want, resp.Tokens)
			assert.Equal(t, wantText, resp.Text)
			assert.Equal(t, chunks.NTokens(), resp.Stats.PromptTokens)
			assert.Equal(t, chunks.ImageTokens(), resp.Stats.ImageTokens)
			assert.Equal(t, len(want), resp.Stats.GeneratedTokens)
			assert.Positive(t, resp.Stats.TimeToFirstToken)
			assert.Positive(t, resp.Stats.ImageEncodeTime)
			assert.Positive(t, resp.Stats.PrefillTokensPerSecond())
		})
	}
}

func TestReturnFullTextAndStream(t *testing.T) {
	p, _, _ := newPipeline(t, testmodel.ProjectorIdefics3, pipeline.Options{})
	in := pipeline.Input{Text: "Describe it.", Images: []pipeline.Image{pipeline.ImageOf(picture(32, 32, 1))}}
	short, err := p.Run(context.Background(), in, pipeline.GenerateOptions{MaxTokens: 6})
	require.NoError(t, err)
	long, err := p.Run(context.Background(), in, pipeline.GenerateOptions{MaxTokens: 6, ReturnFullText: true})
	require.NoError(t, err)
	assert.Equal(t, long.Prompt+short.Text, long.Text)
	assert.Contains(t, long.Prompt, "Describe it.")

	st := p.Stream(context.Background(), in, pipeline.GenerateOptions{MaxTokens: 6})
	var text string
	n := 0
	for tok, err := range st.Tokens() {
		require.NoError(t, err)
		text += tok.Text
		n++
	}
	assert.Equal(t, short.Text, text)
	assert.Equal(t, short.Tokens, st.Response().Tokens)
	assert.GreaterOrEqual(t, n, len(short.Tokens))
	// Repeating an input reuses the cached prompt and image.
	assert.Positive(t, st.Response().Stats.CachedTokens)
}

func TestSessionReusesCacheAcrossTurns(t *testing.T) {
	p, _, _ := newPipeline(t, testmodel.ProjectorIdefics3, pipeline.Options{})
	s, err := p.NewSession(pipeline.SessionOptions{System: "You are terse."})
	require.NoError(t, err)
	defer s.Close()
	ctx := context.Background()
	r1, err := s.Send(ctx, pipeline.Input{Text: "Hello there.", Images: []pipeline.Image{pipeline.ImageOf(picture(48, 48, 9))}}, pipeline.GenerateOptions{MaxTokens: 8})
	require.NoError(t, err)
	assert.Zero(t, r1.Stats.CachedTokens)
	assert.Positive(t, r1.Stats.ImagesEncoded)

	r2, err := s.Send(ctx, pipeline.Input{Text: "And now?"}, pipeline.GenerateOptions{MaxTokens: 8})
	require.NoError(t, err)
	assert.Greater(t, r2.Stats.PromptTokens, r1.Stats.PromptTokens)
	assert.Greater(t, r2.Stats.CachedTokens, r1.Stats.PromptTokens/2, "the first turn's prompt is reused")
	assert.Equal(t, r2.Stats.PromptTokens-r2.Stats.CachedTokens, r2.Stats.EvaluatedTokens)
	assert.Zero(t, r2.Stats.ImagesEncoded, "the first turn's image is not encoded again")
	assert.Zero(t, r2.Stats.ImageTokens-r1.Stats.ImageTokens, "no new image")

	r3, err := s.Send(ctx, pipeline.Input{Text: "Compare.", Images: []pipeline.Image{pipeline.ImageOf(picture(48, 48, 200))}}, pipeline.GenerateOptions{MaxTokens: 8})
	require.NoError(t, err)
	assert.Positive(t, r3.Stats.ImagesEncoded)
	assert.Greater(t, r3.Stats.ImageTokens, r2.Stats.ImageTokens)
	h := s.History()
	require.Len(t, h, 7)
	assert.Contains(t, r3.Prompt, r1.Text, "the first answer is part of the later prompts")
	assert.Equal(t, "system", h[0].Role)
	assert.Equal(t, "assistant", h[6].Role)

	require.NoError(t, s.Reset())
	assert.Len(t, s.History(), 1)
	r4, err := s.Send(ctx, pipeline.Input{Text: "Hi."}, pipeline.GenerateOptions{MaxTokens: 2})
	require.NoError(t, err)
	assert.NotContains(t, r4.Prompt, "Compare.", "Reset forgot the turns")
	// Only the system prompt's tokens can come from the cache now.
	assert.Less(t, r4.Stats.CachedTokens, r4.Stats.PromptTokens-2)
	require.NoError(t, s.Close())
	require.NoError(t, s.Close())
	_, err = s.Send(ctx, pipeline.Input{Text: "x"}, pipeline.GenerateOptions{})
	assert.ErrorIs(t, err, pipeline.ErrClosed)
}

func TestCancelDuringGeneration(t *testing.T) {
	p, _, _ := newPipeline(t, testmodel.ProjectorMLP, pipeline.Options{})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	st := p.Stream(ctx, pipeline.Input{Text: "Count to a million."}, pipeline.GenerateOptions{MaxTokens: 0,
		Sampler: sampler.Config{LogitBias: eogBan(t, p)}})
	var gotErr error
	n := 0
	for _, err := range st.Tokens() {
		if err != nil {
			gotErr = err
			break
		}
		n++
		if n == 3 {
			cancel()
		}
	}
	require.ErrorIs(t, gotErr, llama.ErrCancelled)
	assert.Equal(t, 3, n, "no token comes after the cancel (the latency is BenchmarkCancelLatency's)")
	assert.Equal(t, llama.StopCancelled, st.Response().StopReason)
	// The pipeline still works.
	_, err := p.Run(context.Background(), pipeline.Input{Text: "Again."}, pipeline.GenerateOptions{MaxTokens: 2})
	require.NoError(t, err)
}

// eogBan bans the end-of-generation tokens so generation runs on.
func eogBan(t testing.TB, p *pipeline.Pipeline) map[llama.Token]float32 {
	ban := map[llama.Token]float32{}
	for _, tok := range p.Model().Vocab().EOGTokens() {
		ban[tok] = -1e9
	}
	require.NotEmpty(t, ban)
	return ban
}

func TestRunBatchAndParallel(t *testing.T) {
	p, _, _ := newPipeline(t, testmodel.ProjectorGemma3, pipeline.Options{Sequences: 2})
	var inputs []pipeline.Input
	for i := 0; i < 4; i++ {
		inputs = append(inputs, pipeline.Input{Text: "Picture number?", Images: []pipeline.Image{pipeline.ImageOf(picture(64, 64, uint8(i*60)))}})
	}
	got, err := p.RunBatch(context.Background(), inputs, pipeline.GenerateOptions{MaxTokens: 5})
	require.NoError(t, err)
	require.Len(t, got, 4)
	for i, in := range inputs {
		one, err := p.Run(context.Background(), in, pipeline.GenerateOptions{MaxTokens: 5})
		require.NoError(t, err)
		assert.Equal(t, one.Tokens, got[i].Tokens, "input %d", i)
	}
	var wg sync.WaitGroup
	for i := 0; i < 4; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r, err := p.Run(context.Background(), inputs[i], pipeline.GenerateOptions{MaxTokens: 5})
			if assert.NoError(t, err) {
				assert.Equal(t, got[i].Tokens, r.Tokens)
			}
		}()
	}
	wg.Wait()
}

func TestQuantizeQ8_0(t *testing.T) {
	mp, pp := testmodel.TinyPair(t, testmodel.ProjectorMLP, gguf.TypeF32)
	dir := t.TempDir()
	p, err := pipeline.New(context.Background(), mp, pp, pipeline.Options{Threads: 2, QuantizeQ8_0: true, QuantizedCacheDir: dir, SequenceLength: 512})
	require.NoError(t, err)
	defer p.Close()
	assert.Contains(t, p.Model().Path(), dir)
	f := p.Model().File()
	q8 := 0
	for _, ti := range f.Tensors {
		if ti.Type == gguf.TypeQ8_0 {
			q8++
		}
	}
	assert.Positive(t, q8)
	r, err := p.Run(context.Background(), pipeline.Input{Text: "hi", Images: []pipeline.Image{pipeline.ImageOf(picture(16, 16, 3))}}, pipeline.GenerateOptions{MaxTokens: 3})
	require.NoError(t, err)
	assert.NotEmpty(t, r.Tokens)
	// The second time the cached file is used.
	again, err := pipeline.QuantizedModel(context.Background(), mp, dir, 2)
	require.NoError(t, err)
	assert.Equal(t, p.Model().Path(), again)
}

func TestInputErrors(t *testing.T) {
	p, _, _ := newPipeline(t, testmodel.ProjectorMLP, pipeline.Options{})
	ctx := context.Background()
	for name, in := range map[string]pipeline.Input{
		"empty":         {},
		"text+messages": {Text: "x", Messages: []template.Message{template.UserText("y")}},
		"missing image": {Messages: []template.Message{template.User(template.Image())}},
		"extra image":   {Messages: []template.Message{template.UserText("y")}, Images: []pipeline.Image{pipeline.ImageOf(picture(4, 4, 1))}},
	} {
		_, err := p.Run(ctx, in, pipeline.GenerateOptions{})
		assert.ErrorIs(t, err, pipeline.ErrInvalidInput, name)
	}
	_, err := p.Run(ctx, pipeline.Input{Text: "x", Images: []pipeline.Image{pipeline.ImageBytes([]byte("not an image"))}}, pipeline.GenerateOptions{})
	assert.ErrorIs(t, err, mtmd.ErrUnsupportedFormat)
	_, err = p.Run(ctx, pipeline.Input{Text: "x", Images: []pipeline.Image{pipeline.ImageFile("/nonexistent.png")}}, pipeline.GenerateOptions{})
	assert.Error(t, err)
	_, err = p.Run(ctx, pipeline.Input{Text: "x"}, pipeline.GenerateOptions{MaxTokens: -5})
	assert.ErrorIs(t, err, pipeline.ErrInvalidOptions)
	_, err = p.Run(ctx, pipeline.Input{Text: "x"}, pipeline.GenerateOptions{Sampler: sampler.Config{Temperature: -1}})
	assert.ErrorIs(t, err, sampler.ErrInvalidConfig)
	long := strings.Repeat("word ", 2000)
	_, err = p.Run(ctx, pipeline.Input{Text: long}, pipeline.GenerateOptions{MaxTokens: 2})
	assert.ErrorIs(t, err, llama.ErrPromptTooLong)
	// Still healthy.
	_, err = p.Run(ctx, pipeline.Input{Text: "ok"}, pipeline.GenerateOptions{MaxTokens: 2})
	require.NoError(t, err)

	_, err = pipeline.New(ctx, "/nonexistent.gguf", "/nonexistent.gguf", pipeline.Options{})
	assert.ErrorIs(t, err, llama.ErrNotFound)
	_, err = pipeline.New(ctx, "x", "y", pipeline.Options{Threads: -1})
	assert.ErrorIs(t, err, pipeline.ErrInvalidOptions)

	require.NoError(t, p.Close())
	require.NoError(t, p.Close())
	_, err = p.Run(ctx, pipeline.Input{Text: "x"}, pipeline.GenerateOptions{})
	assert.ErrorIs(t, err, pipeline.ErrClosed)
	_, err = p.NewSession(pipeline.SessionOptions{})
	assert.ErrorIs(t, err, pipeline.ErrClosed)
}

func TestChatMessagesInput(t *testing.T) {
	p, _, _ := newPipeline(t, testmodel.ProjectorIdefics3, pipeline.Options{})
	msgs := []template.Message{
		template.System(template.Text("Be brief.")),
		template.User(template.Image(), template.Text("What is this?")),
		template.Assistant(template.Text("A picture.")),
		template.User(template.Text("And this one?"), template.Image()),
	}
	r, err := p.Run(context.Background(), pipeline.Input{Messages: msgs, Images: []pipeline.Image{
		pipeline.ImageOf(picture(20, 20, 1)), pipeline.ImageOf(picture(20, 20, 100)),
	}}, pipeline.GenerateOptions{MaxTokens: 4})
	require.NoError(t, err)
	assert.Contains(t, r.Prompt, "A picture.")
	assert.Equal(t, 2, strings.Count(r.Prompt, "<image>"), "SmolVLM writes <image> per image: %q", r.Prompt)
}
