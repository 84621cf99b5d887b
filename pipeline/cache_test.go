package pipeline_test

import (
	"bytes"
	"context"
	"image/png"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/vlm-go/vlm/internal/testmodel"
	"github.com/vlm-go/vlm/pipeline"
)

func pngBytes(t testing.TB, w, h int, shade uint8) []byte {
	t.Helper()
	var buf bytes.Buffer
	require.NoError(t, png.Encode(&buf, picture(w, h, shade)))
	return buf.Bytes()
}

// Asking again about a picture takes it from the image cache: it is neither
// preprocessed nor encoded, and the answer is the one a fresh pipeline gives.
func TestSameImageAgainIsNotPreparedAgain(t *testing.T) {
	for _, pt := range testmodel.ProjectorTypes() {
		t.Run(string(pt), func(t *testing.T) {
			ctx := context.Background()
			img := pngBytes(t, 48, 40, 60)
			ask := func(p *pipeline.Pipeline, q string) *pipeline.Response {
				r, err := p.Run(ctx, pipeline.Input{Text: q, Images: []pipeline.Image{pipeline.ImageBytes(img)}}, pipeline.GenerateOptions{MaxTokens: 8})
				require.NoError(t, err)
				return r
			}
			p, _, _ := newPipeline(t, pt, pipeline.Options{})
			r1 := ask(p, "What is this?")
			assert.Equal(t, 0, r1.Stats.ImageCacheHits)
			assert.Equal(t, 1, r1.Stats.ImageCacheMisses)
			assert.Positive(t, r1.Stats.ImagesEncoded)

			r2 := ask(p, "Which colours are there?")
			assert.Equal(t, 1, r2.Stats.ImageCacheHits)
			assert.Equal(t, 0, r2.Stats.ImageCacheMisses, "not preprocessed again")
			assert.Zero(t, r2.Stats.ImagesEncoded)
			assert.GreaterOrEqual(t, r2.Stats.CachedTokens, r2.Stats.ImageTokens, "the image stays in the KV cache")
			st := p.ImageCacheStats()
			assert.EqualValues(t, 1, st.Hits)
			assert.EqualValues(t, 1, st.Misses)
			assert.Equal(t, 1, st.Entries)

			// The same question again, and on a fresh pipeline: same tokens.
			fresh, _, _ := newPipeline(t, pt, pipeline.Options{ImageCacheBytes: -1})
			want := ask(fresh, "Which colours are there?")
			assert.Equal(t, want.Tokens, r2.Tokens)
			assert.Zero(t, fresh.ImageCacheStats().Entries, "cache off")
			// Another context of the pipeline (a batch) uses the cache too.
			rs, err := p.RunBatch(ctx, []pipeline.Input{{Text: "Which colours are there?", Images: []pipeline.Image{pipeline.ImageBytes(img)}}}, pipeline.GenerateOptions{MaxTokens: 8})
			require.NoError(t, err)
			assert.Equal(t, want.Tokens, rs[0].Tokens)
			assert.Equal(t, 1, rs[0].Stats.ImageCacheHits)
		})
	}
}

// A session's history images are prepared once: later turns take them from
// the cache, and a session shares the pipeline's cache with Run.
func TestSessionHistoryImagesNotPreparedAgain(t *testing.T) {
	p, _, _ := newPipeline(t, testmodel.ProjectorIdefics3, pipeline.Options{SequenceLength: 2048})
	ctx := context.Background()
	a, b := pngBytes(t, 48, 48, 10), pngBytes(t, 48, 48, 200)
	_, err := p.Run(ctx, pipeline.Input{Text: "Seen before.", Images: []pipeline.Image{pipeline.ImageBytes(a)}}, pipeline.GenerateOptions{MaxTokens: 2})
	require.NoError(t, err)
	s, err := p.NewSession(pipeline.SessionOptions{})
	require.NoError(t, err)
	defer s.Close()
	opts := pipeline.GenerateOptions{MaxTokens: 4}
	r1, err := s.Send(ctx, pipeline.Input{Text: "Two pictures.", Images: []pipeline.Image{pipeline.ImageBytes(a), pipeline.ImageBytes(b)}}, opts)
	require.NoError(t, err)
	assert.Equal(t, 1, r1.Stats.ImageCacheHits, "a came from Run")
	assert.Equal(t, 1, r1.Stats.ImageCacheMisses, "b is new")
	for i, q := range []string{"And now?", "Once more."} {
		r, err := s.Send(ctx, pipeline.Input{Text: q}, opts)
		require.NoError(t, err)
		assert.Equal(t, 2, r.Stats.ImageCacheHits, "turn %d", i+2)
		assert.Zero(t, r.Stats.ImageCacheMisses, "turn %d", i+2)
		assert.Zero(t, r.Stats.ImagesEncoded, "turn %d", i+2)
	}
}

// Text with a NUL byte reaches the model whole, in Run and in a session:
// the answer differs from the one to the text cut at the NUL.
func TestNULByteInText(t *testing.T) {
	p, _, _ := newPipeline(t, testmodel.ProjectorMLP, pipeline.Options{})
	ctx := context.Background()
	opts := pipeline.GenerateOptions{MaxTokens: 4}
	whole, err := p.Run(ctx, pipeline.Input{Text: "hello\x00 world, what is this?"}, opts)
	require.NoError(t, err)
	cut, err := p.Run(ctx, pipeline.Input{Text: "hello"}, opts)
	require.NoError(t, err)
	assert.Greater(t, whole.Stats.PromptTokens, cut.Stats.PromptTokens+5, "the text after the NUL is evaluated")
	assert.Contains(t, whole.Prompt, "hello\x00 world")

	s, err := p.NewSession(pipeline.SessionOptions{})
	require.NoError(t, err)
	defer s.Close()
	r1, err := s.Send(ctx, pipeline.Input{Text: "first\x00 turn"}, opts)
	require.NoError(t, err)
	r2, err := s.Send(ctx, pipeline.Input{Text: "second\x00 turn"}, opts)
	require.NoError(t, err)
	assert.Greater(t, r2.Stats.PromptTokens, r1.Stats.PromptTokens+r1.Stats.GeneratedTokens, "turn 2 holds turn 1 and its own text")
	assert.Positive(t, r2.Stats.EvaluatedTokens)
}
