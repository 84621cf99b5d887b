package mtmd_test

import (
	"context"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/vlm-go/vlm/gguf"
	"github.com/vlm-go/vlm/internal/testmodel"
	"github.com/vlm-go/vlm/llama"
	"github.com/vlm-go/vlm/mtmd"
)

// TestNonCausalImageIsNotSplitAcrossBatches: with EvalOptions.BatchSize below
// an image's tokens, a non-causal (Gemma 3) image is still decoded in one
// batch, so the logits are those of a large BatchSize (the old code split the
// image, and its first tokens never saw the later ones).
func TestNonCausalImageIsNotSplitAcrossBatches(t *testing.T) {
	p := loadPair(t, testmodel.ProjectorGemma3, gguf.TypeF32)
	require.True(t, p.proj.UsesNonCausal())
	img, err := mtmd.ImageFromGo(testImage(64, 64, 3))
	require.NoError(t, err)
	chunks, err := p.proj.Tokenize(context.Background(), "look "+p.proj.Marker()+" here", []*mtmd.Image{img}, mtmd.TokenizeOptions{})
	require.NoError(t, err)
	defer chunks.Close()
	perImage := chunks.ImageTokens()
	require.Greater(t, perImage, 2)
	logits := func(nBatch int) []float32 {
		x, err := p.model.NewContext(llama.ContextOptions{ContextSize: 256, BatchSize: 128, Threads: 2})
		require.NoError(t, err)
		defer x.Close()
		_, _, err = p.proj.Eval(context.Background(), x, chunks, mtmd.EvalOptions{Logits: true, BatchSize: nBatch})
		require.NoError(t, err)
		l, err := x.Logits(-1)
		require.NoError(t, err)
		return l
	}
	whole := logits(0)
	split := logits(perImage / 2)
	assert.InDeltaSlice(t, whole, split, 1e-4)
}
