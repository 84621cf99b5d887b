package llama_test

import (
	"fmt"
	"math"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/vlm-go/vlm/llama"
)

func TestTopLogprobs(t *testing.T) {
	logits := []float32{1, 3, float32(math.NaN()), 3, -2, 0.5}
	lse := llama.LogSumExp(logits)
	want := math.Log(math.Exp(1) + 2*math.Exp(3) + math.Exp(-2) + math.Exp(0.5))
	require.InDelta(t, want, float64(lse), 1e-5, "NaN is an impossible token")
	top := llama.TopLogprobs(logits, lse, 3, nil)
	require.Equal(t, []llama.Token{1, 3, 0}, []llama.Token{top[0].ID, top[1].ID, top[2].ID}, "ties: lower ID first")
	require.InDelta(t, 3-want, float64(top[0].Logprob), 1e-5)
	require.Len(t, llama.TopLogprobs(logits, lse, 10, top), 5, "at most the finite tokens")
	require.Empty(t, llama.TopLogprobs(logits, lse, 0, nil))
	require.True(t, math.IsInf(float64(llama.LogSumExp([]float32{float32(math.Inf(-1))})), 1))
}

// BenchmarkLogprobs is the per-token cost of Request.Logprobs over a
// 49280-token vocabulary (SmolVLM's): LogSumExp and the top 0 or 20.
//
//	./build.sh test ./llama -run '^$' -bench Logprobs
func BenchmarkLogprobs(b *testing.B) {
	logits := make([]float32, 49280)
	x := uint32(1)
	for i := range logits {
		x = x*1664525 + 1013904223
		logits[i] = float32(x>>8)/float32(1<<24)*20 - 10
	}
	for _, n := range []int{0, 20} {
		b.Run(fmt.Sprint("top", n), func(b *testing.B) {
			var dst []llama.TokenLogprob
			for b.Loop() {
				lse := llama.LogSumExp(logits)
				dst = llama.TopLogprobs(logits, lse, n, dst)
			}
		})
	}
}
