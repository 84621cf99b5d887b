package mtmd_test

import (
	"context"
	"math"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/vlm-go/vlm"
	"github.com/vlm-go/vlm/gguf"
	"github.com/vlm-go/vlm/internal/testmodel"
	"github.com/vlm-go/vlm/internal/vlmkern"
	"github.com/vlm-go/vlm/llama"
	"github.com/vlm-go/vlm/mtmd"
)

// diff returns the RMS of a-b over the RMS of b, and the largest |a-b| over
// the largest |b|.
func diff(a, b []float32) (rms, maxRel float64) {
	var se, sb, me, mb float64
	for i := range b {
		d := float64(a[i]) - float64(b[i])
		se += d * d
		sb += float64(b[i]) * float64(b[i])
		me = max(me, math.Abs(d))
		mb = max(mb, math.Abs(float64(b[i])))
	}
	return math.Sqrt(se / sb), me / mb
}

// TestFlashAttentionKernel compares the embeddings of encoders whose
// attention vlm's kernel takes (head sizes 16 and 64, one and two key
// blocks) with ggml's kernel's, and one it leaves to ggml (head size 24),
// and the greedy answers about the picture. ggml's kernel rounds Q to F16
// and accumulates softmax·V in F16: against attention computed in double
// precision it is off by a relative RMS of 6e-4 to 5e-3, vlm's by under 1e-6
// (internal/vlmkern's TestFlashAttentionAgainstExact). So the two differ by
// ggml's error, carried through the encoder's layers: bound 1e-2 relative
// RMS (the measured values are logged).
func TestFlashAttentionKernel(t *testing.T) {
	if !vlmkern.Available || vlm.CPUKernels() != "avx512" {
		t.Skipf("vlm's flash-attention kernel does not run here (CPU kernels %q): nothing to compare", vlm.CPUKernels())
	}
	tiny, err := testmodel.TinySpec(testmodel.ProjectorIdefics3, gguf.TypeF16)
	require.NoError(t, err)
	mid := tiny
	mid.Name = "fattn-d64"
	mid.Projector.NEmbd, mid.Projector.NHead, mid.Projector.NFF = 128, 2, 256
	mid.Projector.ImageSize, mid.Projector.PreprocImageSize = 160, 0 // 20×20 patches: keys in two blocks
	odd := tiny
	odd.Name = "fattn-d24"
	odd.Projector.NEmbd, odd.Projector.NHead, odd.Projector.NFF = 48, 2, 96
	for _, c := range []struct {
		name  string
		spec  testmodel.Spec
		takes bool
		size  int
	}{
		{"d16", tiny, true, 64},
		{"d64", mid, true, 160},
		{"d24-ggml", odd, false, 64},
	} {
		t.Run(c.name, func(t *testing.T) {
			ctx := context.Background()
			mpath, ppath, err := testmodel.Ensure(ctx, t.TempDir(), c.spec)
			require.NoError(t, err)
			m, err := llama.Load(ctx, mpath, llama.LoadOptions{})
			require.NoError(t, err)
			defer m.Close()
			proj, err := mtmd.Load(ctx, ppath, m, mtmd.Options{Threads: 2})
			require.NoError(t, err)
			defer proj.Close()
			p := pair{spec: c.spec, model: m, proj: proj}
			img, err := mtmd.ImageFromGo(testImage(c.size, c.size, 5))
			require.NoError(t, err)
			encode := func() []float32 {
				chunks, err := proj.Tokenize(ctx, proj.Marker(), []*mtmd.Image{img}, mtmd.TokenizeOptions{})
				require.NoError(t, err)
				defer chunks.Close()
				var all []float32
				for i, ch := range chunks.All() {
					if ch.Type == mtmd.ChunkImage {
						e, err := proj.Encode(ctx, chunks, i)
						require.NoError(t, err)
						all = append(all, e...)
					}
				}
				require.NotEmpty(t, all)
				return all
			}
			was := vlmkern.SetGGMLFlashAttention(true)
			defer vlmkern.SetGGMLFlashAttention(was)
			old := encode()
			oldAnswer, _ := generate(t, p, img, 8, nil)
			vlmkern.SetGGMLFlashAttention(false)
			calls := vlmkern.FlashAttentionCalls()
			neu := encode()
			newAnswer, _ := generate(t, p, img, 8, nil)
			if c.takes {
				assert.Greater(t, vlmkern.FlashAttentionCalls(), calls, "vlm's kernel did not run")
			} else {
				assert.Equal(t, calls, vlmkern.FlashAttentionCalls(), "vlm's kernel ran on a case it must leave to ggml")
			}
			rms, maxRel := diff(neu, old)
			t.Logf("vlm's kernel against ggml's: %.2e relative RMS, %.2e largest difference over largest value", rms, maxRel)
			assert.Less(t, rms, 1e-2)
			assert.Less(t, maxRel, 5e-2)
			assert.Equal(t, oldAnswer, newAnswer, "greedy answers")
		})
	}
}
