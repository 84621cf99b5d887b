package vlmkern_test

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/vlm-go/vlm"
	"github.com/vlm-go/vlm/internal/vlmkern"
)

// TestFlashAttentionAgainstExact: on the shapes a ViT makes (and edge cases
// of the blocking: fewer keys than one micro-kernel, a tail block, queries
// not a multiple of a block, other head sizes, peaked softmax), vlm's kernel
// is at least as close to attention computed in double precision as ggml's
// kernel, which rounds Q to F16 and accumulates in F16; both see the same
// F16 K and V. Bound: relative RMS error 2e-4 (F16's half-ulp is 2.4e-4;
// vlm's kernel keeps F32 throughout, so its error is F32 rounding).
func TestFlashAttentionAgainstExact(t *testing.T) {
	if !vlmkern.Available || vlm.CPUKernels() != "avx512" {
		t.Skipf("vlm's flash-attention kernel does not run here (CPU kernels %q)", vlm.CPUKernels())
	}
	for _, c := range []vlmkern.AttentionCheck{
		{DK: 64, DV: 64, Queries: 1024, Keys: 1024, Heads: 12}, // SigLIP-B/16 at 512 px
		{DK: 16, DV: 16, Queries: 16, Keys: 16, Heads: 2},      // tiny test models
		{DK: 64, DV: 64, Queries: 70, Keys: 300, Heads: 3},
		{DK: 128, DV: 128, Queries: 9, Keys: 33, Heads: 1},
		{DK: 80, DV: 80, Queries: 40, Keys: 257, Heads: 2},
		{DK: 64, DV: 128, Queries: 33, Keys: 600, Heads: 2},
		{DK: 64, DV: 64, Queries: 64, Keys: 513, Heads: 2, QScale: 8},
	} {
		c.Threads, c.Seed = 2, 42
		before := vlmkern.FlashAttentionCalls()
		require.NoError(t, vlmkern.CheckFlashAttention(&c))
		assert.Greater(t, vlmkern.FlashAttentionCalls(), before, "vlm's kernel did not take %+v", c)
		t.Logf("D %d/%d q %d k %d h %d: vlm %.2e rms %.2e max, ggml %.2e rms %.2e max, between %.2e; %.1f ms vs %.1f ms",
			c.DK, c.DV, c.Queries, c.Keys, c.Heads, c.VLMRMS, c.VLMMax, c.GGMLRMS, c.GGMLMax, c.BetweenRMS, c.VLMMs, c.GGMLMs)
		assert.Less(t, c.VLMRMS, 2e-4)
		assert.LessOrEqual(t, c.VLMRMS, c.GGMLRMS)
	}
}
