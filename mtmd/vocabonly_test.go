package mtmd_test

import (
	"context"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/vlm-go/vlm"
	"github.com/vlm-go/vlm/gguf"
	"github.com/vlm-go/vlm/internal/llamaaccess"
	"github.com/vlm-go/vlm/internal/testmodel"
	"github.com/vlm-go/vlm/llama"
	"github.com/vlm-go/vlm/mtmd"
)

// TestLoadRefusesVocabOnlyModel: a projector needs the text model's
// weights (and its embedding width, which a vocab-only model does not
// report), so mtmd.Load fails with llama.ErrVocabOnly instead of a
// misleading width mismatch, and the same projector then loads for the
// model loaded with weights.
func TestLoadRefusesVocabOnlyModel(t *testing.T) {
	for _, pt := range []testmodel.ProjectorType{testmodel.ProjectorMLP, testmodel.ProjectorIdefics3, testmodel.ProjectorGemma3} {
		t.Run(string(pt), func(t *testing.T) {
			mpath, ppath := testmodel.TinyPair(t, pt, gguf.TypeF16)
			ctx := context.Background()
			voc, err := llama.Load(ctx, mpath, llama.LoadOptions{VocabOnly: true})
			require.NoError(t, err)
			defer voc.Close()

			p, err := mtmd.Load(ctx, ppath, voc, mtmd.Options{Threads: 1})
			require.Error(t, err)
			assert.Nil(t, p)
			assert.ErrorIs(t, err, llama.ErrVocabOnly)
			assert.NotErrorIs(t, err, mtmd.ErrProjectorMismatch)
			assert.Contains(t, err.Error(), "without VocabOnly")

			// The binding refuses too, for callers that reach the native model (this module's packages).
			err = llamaaccess.ModelNative(voc, func(c *vlm.LlamaModel) error {
				_, err := vlm.LoadProjector(ppath, c, vlm.ProjectorParams{Threads: 1})
				return err
			})
			assert.ErrorIs(t, err, llama.ErrVocabOnly)

			full, err := llama.Load(ctx, mpath, llama.LoadOptions{})
			require.NoError(t, err)
			defer full.Close()
			p, err = mtmd.Load(ctx, ppath, full, mtmd.Options{Threads: 1})
			require.NoError(t, err)
			require.NoError(t, p.Close())
		})
	}
}
