package demo_test

import (
	"context"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/vlm-go/vlm/demo"
	"github.com/vlm-go/vlm/pipeline"
)

// TestDemoPairAnswers: the demo pair loads and answers about the demo
// picture through the pipeline, and a second call reuses the files.
func TestDemoPairAnswers(t *testing.T) {
	ctx := context.Background()
	m, p, err := demo.Pair(ctx)
	require.NoError(t, err)
	m2, p2, err := demo.Pair(ctx)
	require.NoError(t, err)
	assert.Equal(t, [2]string{m, p}, [2]string{m2, p2})
	pl, err := pipeline.New(ctx, m, p, pipeline.Options{Threads: 1, SequenceLength: 512})
	require.NoError(t, err)
	defer pl.Close()
	r, err := pl.Run(ctx, pipeline.Input{Text: "What is this?", Images: []pipeline.Image{pipeline.ImageOf(demo.Picture())}}, pipeline.GenerateOptions{MaxTokens: 4})
	require.NoError(t, err)
	assert.Positive(t, r.Stats.ImageTokens)
	assert.NotEmpty(t, r.Tokens)
}
