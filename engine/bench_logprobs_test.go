package engine_test

import (
	"context"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/vlm-go/vlm/engine"
	"github.com/vlm-go/vlm/internal/testmodel"
	"github.com/vlm-go/vlm/llama"
)

// BenchmarkDecodeLogprobs decodes 16 tokens with SmolVLM-256M's shapes
// (a 49280-token vocabulary) with log-probabilities off, on, and on with
// 20 alternatives: the cost of Request.Logprobs per token (ns/token).
//
//	./build.sh test ./engine -run '^$' -bench DecodeLogprobs -benchtime 5x
func BenchmarkDecodeLogprobs(b *testing.B) {
	spec, err := testmodel.Preset(testmodel.PresetSmolVLM256M)
	require.NoError(b, err)
	dir, err := testmodel.DefaultCacheDir()
	require.NoError(b, err)
	mp, _, err := testmodel.Ensure(context.Background(), dir, spec)
	require.NoError(b, err)
	m, err := llama.Load(context.Background(), mp, llama.LoadOptions{NoGPU: true})
	require.NoError(b, err)
	defer m.Close()
	e, err := engine.New(m, nil, engine.Options{Sequences: 1, SequenceLength: 256, Threads: 1, FlashAttn: llama.FlashAttentionOff})
	require.NoError(b, err)
	defer e.Close()
	prompt := []llama.Token{1, 200, 300, 400, 500, 600, 700, 800}
	const tokens = 16
	for _, c := range []struct {
		name     string
		logprobs bool
		top      int
	}{{"off", false, 0}, {"on", true, 0}, {"top20", true, 20}, {"off-again", false, 0}} {
		b.Run(c.name, func(b *testing.B) {
			n := 0
			for b.Loop() {
				s, err := e.Submit(context.Background(), engine.Request{Tokens: prompt, MaxTokens: tokens, Logprobs: c.logprobs, TopLogprobs: c.top})
				require.NoError(b, err)
				r := s.Wait()
				require.NoError(b, r.Err)
				n += len(r.Tokens)
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(n), "ns/token")
		})
	}
}
