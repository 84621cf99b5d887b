package pipeline_test

import (
	"context"
	"strings"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/vlm-go/vlm/internal/testmodel"
	"github.com/vlm-go/vlm/llama"
	"github.com/vlm-go/vlm/pipeline"
)

// TestConcurrentRunsEqualAlone: Run from 8 goroutines on a pipeline with 4
// sequences gives each input the answer it gets alone, and the calls are
// batched (fewer decode steps than tokens).
func TestConcurrentRunsEqualAlone(t *testing.T) {
	p, _, _ := newPipeline(t, testmodel.ProjectorIdefics3, pipeline.Options{Sequences: 4})
	ctx := context.Background()
	var inputs []pipeline.Input
	for i := range 8 {
		in := pipeline.Input{Text: strings.Repeat("Describe it. ", 1+i%3), Images: []pipeline.Image{pipeline.ImageOf(picture(40+4*i, 32, uint8(30*i)))}}
		inputs = append(inputs, in)
	}
	opts := pipeline.GenerateOptions{MaxTokens: 10}
	want := make([][]llama.Token, len(inputs))
	for i, in := range inputs {
		r, err := p.Run(ctx, in, opts)
		require.NoError(t, err)
		want[i] = r.Tokens
	}
	before := p.EngineStats()
	var wg sync.WaitGroup
	for i, in := range inputs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r, err := p.Run(ctx, in, opts)
			if assert.NoError(t, err) {
				assert.Equal(t, want[i], r.Tokens, "input %d", i)
				assert.Zero(t, r.Stats.ImagesEncoded, "input %d: the picture comes from the image cache", i)
			}
		}()
	}
	wg.Wait()
	after := p.EngineStats()
	assert.Less(t, after.Steps-before.Steps, (after.TokensDecoded-before.TokensDecoded)/2, "batched: %+v", after)
}

// TestSessionFailedTurnLeavesSession: a turn that fails (too long,
// cancelled) leaves the history as it was; DropOldestTurns drops old turns
// until the prompt fits.
func TestSessionFailedTurnLeavesSession(t *testing.T) {
	p, _, _ := newPipeline(t, testmodel.ProjectorMLP, pipeline.Options{SequenceLength: 256})
	ctx := context.Background()
	s, err := p.NewSession(pipeline.SessionOptions{System: "Be brief."})
	require.NoError(t, err)
	_, err = s.Send(ctx, pipeline.Input{Text: "Hello."}, pipeline.GenerateOptions{MaxTokens: 4})
	require.NoError(t, err)
	h := s.History()
	require.Len(t, h, 3)

	_, err = s.Send(ctx, pipeline.Input{Text: strings.Repeat("word ", 400)}, pipeline.GenerateOptions{MaxTokens: 4})
	require.ErrorIs(t, err, llama.ErrPromptTooLong)
	assert.Equal(t, h, s.History(), "a prompt too long leaves the session as it was")

	cctx, cancel := context.WithCancel(ctx)
	cancel()
	_, err = s.Send(cctx, pipeline.Input{Text: "Again?"}, pipeline.GenerateOptions{MaxTokens: 4})
	require.ErrorIs(t, err, llama.ErrCancelled)
	assert.Equal(t, h, s.History(), "a cancelled turn leaves the session as it was")

	_, err = p.NewSession(pipeline.SessionOptions{SequenceLength: 257})
	assert.ErrorIs(t, err, pipeline.ErrInvalidOptions)

	d, err := p.NewSession(pipeline.SessionOptions{System: "Be brief.", History: pipeline.DropOldestTurns, SequenceLength: 160})
	require.NoError(t, err)
	for i := range 6 {
		_, err := d.Send(ctx, pipeline.Input{Text: strings.Repeat("more words here ", 6)}, pipeline.GenerateOptions{MaxTokens: 8})
		require.NoError(t, err, "turn %d", i)
	}
	dh := d.History()
	assert.Equal(t, "system", dh[0].Role, "the system message stays")
	assert.Less(t, len(dh), 13, "old turns were dropped")
}

// TestMarkerInTextIsRefused: text holding the projector's image marker
// would silently become another image; it is refused with a clear error.
func TestMarkerInTextIsRefused(t *testing.T) {
	p, _, _ := newPipeline(t, testmodel.ProjectorMLP, pipeline.Options{})
	for _, mk := range []string{p.Projector().Marker(), "<__image__>"} {
		_, err := p.Run(context.Background(), pipeline.Input{Text: "look: " + mk, Images: []pipeline.Image{pipeline.ImageOf(picture(32, 32, 1))}}, pipeline.GenerateOptions{MaxTokens: 2})
		require.ErrorIs(t, err, pipeline.ErrInvalidInput)
		assert.Contains(t, err.Error(), "reads as an image")
	}
}

// TestStreamIteratedTwice: a Stream is one request; a second iteration
// yields an error and runs nothing.
func TestStreamIteratedTwice(t *testing.T) {
	p, _, _ := newPipeline(t, testmodel.ProjectorMLP, pipeline.Options{})
	st := p.Stream(context.Background(), pipeline.Input{Text: "Hi"}, pipeline.GenerateOptions{MaxTokens: 3})
	n := 0
	for _, err := range st.Tokens() {
		require.NoError(t, err)
		n++
	}
	require.Positive(t, n)
	before := p.EngineStats().Submitted
	var second error
	for _, err := range st.Tokens() {
		second = err
	}
	require.ErrorIs(t, second, pipeline.ErrInvalidInput)
	assert.Equal(t, before, p.EngineStats().Submitted, "nothing ran again")
}
