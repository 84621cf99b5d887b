package pipeline_test

import (
	"context"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/vlm-go/vlm/internal/testmodel"
	"github.com/vlm-go/vlm/pipeline"
	"github.com/vlm-go/vlm/sampler"
)

// TestRunChoices: three choices about a picture from one prefill: the
// engine forks twice, only the first choice evaluated the prompt and
// encoded the picture, each has its own seed (Seed+i) and logprobs for
// every token; streamed, the tokens carry their choice's index and add up
// to each response's text.
func TestRunChoices(t *testing.T) {
	p, _, _ := newPipeline(t, testmodel.ProjectorIdefics3, pipeline.Options{Sequences: 3, Threads: 1})
	in := pipeline.Input{Text: "What is in the picture?", Images: []pipeline.Image{pipeline.ImageOf(picture(40, 30, 17))}}
	opts := pipeline.GenerateOptions{MaxTokens: 8, Sampler: sampler.Config{Temperature: 1, Seed: 7}, Logprobs: true, TopLogprobs: 2}

	before := p.EngineStats()
	resps, err := p.RunChoices(context.Background(), in, opts, 3)
	require.NoError(t, err)
	after := p.EngineStats()
	require.Equal(t, int64(2), after.Forked-before.Forked)
	require.Len(t, resps, 3)
	first := resps[0].Stats
	require.Equal(t, first.PromptTokens, first.EvaluatedTokens)
	require.Positive(t, first.ImagesEncoded)
	for i, r := range resps {
		require.NotEmpty(t, r.Tokens, "choice %d", i)
		require.Len(t, r.Logprobs, len(r.Tokens), "choice %d", i)
		for j, lp := range r.Logprobs {
			require.Equal(t, r.Tokens[j], lp.ID)
			require.Len(t, lp.Top, 2)
		}
		require.Equal(t, first.PromptTokens, r.Stats.PromptTokens)
		require.NotEmpty(t, r.Prompt)
		if i > 0 {
			require.Zero(t, r.Stats.EvaluatedTokens, "choice %d", i)
			require.Zero(t, r.Stats.ImagesEncoded, "choice %d", i)
		}
		require.Equal(t, uint32(7+i), r.Seed, "choice %d samples with seed 7+i", i)
	}
	// Greedy choices are the greedy answer.
	greedy := pipeline.GenerateOptions{MaxTokens: 8}
	alone, err := p.Run(context.Background(), in, greedy)
	require.NoError(t, err)
	gs, err := p.RunChoices(context.Background(), in, greedy, 2)
	require.NoError(t, err)
	for i, r := range gs {
		require.Equal(t, alone.Tokens, r.Tokens, "greedy choice %d", i)
	}

	st := p.StreamChoices(context.Background(), in, opts, 3)
	texts := make([]strings.Builder, 3)
	for tok, err := range st.Tokens() {
		require.NoError(t, err)
		if tok.ID >= 0 {
			require.NotNil(t, tok.Logprobs)
		}
		texts[tok.Choice].WriteString(tok.Text)
	}
	for i, r := range st.Responses() {
		require.Equal(t, r.Text, texts[i].String())
		require.Equal(t, resps[i].Text, r.Text, "choice %d: the same seeds, the same answers", i)
	}

	// Breaking out stops every choice.
	st = p.StreamChoices(context.Background(), in, opts, 3)
	for range st.Tokens() {
		break
	}
	for _, r := range st.Responses() {
		require.NotEmpty(t, r.StopReason)
	}

	_, err = p.RunChoices(context.Background(), in, opts, 4)
	require.ErrorIs(t, err, pipeline.ErrInvalidOptions, "more choices than Sequences")
	_, err = p.Run(context.Background(), in, pipeline.GenerateOptions{TopLogprobs: 3})
	require.ErrorIs(t, err, pipeline.ErrInvalidOptions, "TopLogprobs without Logprobs")
}
