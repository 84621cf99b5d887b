package engine_test

import (
	"context"
	"fmt"
	"os"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/vlm-go/vlm/engine"
	"github.com/vlm-go/vlm/gguf"
	"github.com/vlm-go/vlm/internal/testmodel"
	"github.com/vlm-go/vlm/llama"
)

// invariantPrompts are the prompts of TestGreedyBatchInvariant.
func invariantPrompts(t testing.TB, m *llama.Model, n int) [][]llama.Token {
	t.Helper()
	out := make([][]llama.Token, n)
	for i := range out {
		toks, err := m.Vocab().Tokenize(fmt.Sprintf("Stream %d: tell a long story about the number %d.", i, i*7+3), true, false)
		require.NoError(t, err)
		out[i] = toks
	}
	return out
}

// greedyAloneAndBatched answers every prompt greedily (end-of-generation
// banned, so every answer has maxTokens tokens) through one engine of
// len(prompts) sequences: first one request at a time, then all at once.
func greedyAloneAndBatched(t *testing.T, m *llama.Model, prompts [][]llama.Token, maxTokens int, fa llama.FlashAttention) (alone, batched [][]llama.Token) {
	t.Helper()
	e, err := engine.New(m, nil, engine.Options{Sequences: len(prompts), SequenceLength: 256, Threads: 1, FlashAttn: fa})
	require.NoError(t, err)
	defer e.Close()
	smp := samplerIgnoreEOG(pair{model: m})
	submit := func(toks []llama.Token) *engine.Stream {
		s, err := e.Submit(context.Background(), engine.Request{Tokens: toks, MaxTokens: maxTokens, Sampler: smp})
		require.NoError(t, err)
		return s
	}
	for _, p := range prompts {
		r := submit(p).Wait()
		require.NoError(t, r.Err)
		alone = append(alone, r.Tokens)
	}
	streams := make([]*engine.Stream, len(prompts))
	for i, p := range prompts {
		streams[i] = submit(p)
	}
	for _, s := range streams {
		r := s.Wait()
		require.NoError(t, r.Err)
		batched = append(batched, r.Tokens)
	}
	return alone, batched
}

// TestGreedyBatchInvariant: with flash attention (the pipeline's default
// on the CPU, see pipeline.Options.BatchInvariant) the same greedy requests give the same tokens
// decoded one at a time and all together, on the tiny model and on the
// SmolVLM-256M shapes (Q8_0), where without it 1 of 8 answers differs
// within 32 tokens.
func TestGreedyBatchInvariant(t *testing.T) {
	tiny, _ := testmodel.TinyPair(t, testmodel.ProjectorIdefics3, gguf.TypeF16)
	cases := []struct {
		name      string
		path      func(t *testing.T) string
		maxTokens int
	}{
		{"tiny", func(*testing.T) string { return tiny }, 64},
		{"smolvlm-256m", smolvlmText, 32},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			m, err := llama.Load(context.Background(), c.path(t), llama.LoadOptions{})
			require.NoError(t, err)
			defer m.Close()
			prompts := invariantPrompts(t, m, 8)
			alone, batched := greedyAloneAndBatched(t, m, prompts, c.maxTokens, llama.FlashAttentionOn)
			for i := range prompts {
				require.Len(t, alone[i], c.maxTokens)
				require.Equal(t, alone[i], batched[i], "prompt %d: alone and batched differ", i)
			}
		})
	}
}

// smolvlmText is the SmolVLM-256M-shaped text model (Q8_0) from
// testmodel's cache ($VLM_TESTMODEL_CACHE or the user cache), written
// there the first time (a few seconds).
func smolvlmText(t *testing.T) string {
	t.Helper()
	if testing.Short() {
		t.Skip("-short: the SmolVLM-256M shapes take about half a minute")
	}
	spec, err := testmodel.Preset(testmodel.PresetSmolVLM256M)
	require.NoError(t, err)
	spec.WeightType = gguf.TypeQ8_0
	dir := os.Getenv("VLM_TESTMODEL_CACHE")
	if dir == "" {
		dir, err = testmodel.DefaultCacheDir()
		require.NoError(t, err)
	}
	mp, _, err := testmodel.Ensure(context.Background(), dir, spec)
	require.NoError(t, err)
	return mp
}
