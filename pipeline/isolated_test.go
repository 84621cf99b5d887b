package pipeline_test

import (
	"context"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/vlm-go/vlm/gguf"
	"github.com/vlm-go/vlm/internal/testmodel"
	"github.com/vlm-go/vlm/isolate"
	"github.com/vlm-go/vlm/pipeline"
)

// TestIsolatedNew: with Options.Isolated the pair is tried in a child
// first; a good pair then loads and answers as without it.
func TestIsolatedNew(t *testing.T) {
	mp, pp := testmodel.TinyPair(t, testmodel.ProjectorMLP, gguf.TypeF16)
	ctx := context.Background()
	p, err := pipeline.New(ctx, mp, pp, pipeline.Options{Isolated: true, Threads: 1, SequenceLength: 512})
	require.NoError(t, err)
	defer p.Close()
	r, err := p.Run(ctx, pipeline.Input{Text: "Hi"}, pipeline.GenerateOptions{MaxTokens: 3})
	require.NoError(t, err)
	assert.NotEmpty(t, r.Tokens)

	_, err = pipeline.New(ctx, mp, mp, pipeline.Options{Isolated: true, Threads: 1, SequenceLength: 512})
	require.ErrorIs(t, err, isolate.ErrFailed, "a text model given as the projector fails its trial")
	t.Log(err)
}
