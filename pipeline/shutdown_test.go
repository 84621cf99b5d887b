package pipeline_test

import (
	"context"
	"iter"
	"math"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/vlm-go/vlm/internal/testmodel"
	"github.com/vlm-go/vlm/llama"
	"github.com/vlm-go/vlm/pipeline"
	"github.com/vlm-go/vlm/sampler"
)

// TestPipelineShutdown: a stream that runs when Shutdown is called is
// answered in full; new calls fail with ErrShuttingDown meanwhile and
// with ErrClosed after.
func TestPipelineShutdown(t *testing.T) {
	p, _, _ := newPipeline(t, testmodel.ProjectorMLP, pipeline.Options{Sequences: 2})
	ctx := context.Background()
	ban := map[llama.Token]float32{}
	for _, tok := range p.Model().Vocab().EOGTokens() {
		ban[tok] = float32(math.Inf(-1))
	}
	// 200 tokens: more than the engine buffers for a reader that is
	// behind, so the stream cannot end while this test does not read.
	const want = 200
	st := p.Stream(ctx, pipeline.Input{Text: "Tell me a story."}, pipeline.GenerateOptions{MaxTokens: want, Sampler: sampler.Config{LogitBias: ban}})
	next, stop := iter.Pull2(st.Tokens())
	defer stop()
	tok, err, ok := next()
	require.True(t, ok)
	require.NoError(t, err) // it runs
	require.GreaterOrEqual(t, tok.ID, llama.Token(0))

	shut := make(chan error, 1)
	go func() { shut <- p.Shutdown(ctx) }()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		// Taken before Shutdown: answered on the other sequence.
		if _, err = p.Run(ctx, pipeline.Input{Text: "Another?"}, pipeline.GenerateOptions{MaxTokens: 1}); err != nil {
			break
		}
		time.Sleep(time.Millisecond)
	}
	require.ErrorIs(t, err, pipeline.ErrShuttingDown)
	require.ErrorIs(t, err, pipeline.ErrClosed)

	n := 1
	for {
		tok, err, ok := next()
		if !ok {
			break
		}
		require.NoError(t, err)
		if tok.ID >= 0 {
			n++
		}
	}
	assert.Equal(t, want, n)
	assert.Equal(t, llama.StopMaxTokens, st.Response().StopReason)
	require.NoError(t, <-shut)
	_, err = p.Run(ctx, pipeline.Input{Text: "Still there?"}, pipeline.GenerateOptions{MaxTokens: 1})
	require.ErrorIs(t, err, pipeline.ErrClosed)
}
