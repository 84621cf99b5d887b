package engine_test

import (
	"context"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/vlm-go/vlm/internal/testmodel"
	"github.com/vlm-go/vlm/llama"
)

// TestFullCacheBatchLeavesNothing pins what the engine's handling of a
// failed decode relies on in the pinned llama.cpp: a batch that llama.cpp
// splits into several ubatches (here 48 tokens, UBatchSize 16) and whose
// later ubatch would not fit the KV cache fails with ErrContextFull
// before any of it is stored (llama_kv_cache::prepare places every ubatch
// first and restores the cells), so the sequence holds nothing of it.
func TestFullCacheBatchLeavesNothing(t *testing.T) {
	p := loadPair(t, testmodel.ProjectorMLP)
	x, err := p.model.NewContext(llama.ContextOptions{ContextSize: 256, BatchSize: 64, UBatchSize: 16, Sequences: 2, Threads: 1, FlashAttn: llama.FlashAttentionOff})
	require.NoError(t, err)
	defer x.Close()
	nCtx := x.Options().ContextSize
	b, err := p.model.NewBatch(64, 1)
	require.NoError(t, err)
	defer b.Close()
	decode := func(seq int32, toks []llama.Token, pos int32) error {
		b.Clear()
		for i, tok := range toks {
			require.NoError(t, b.Add(tok, pos+int32(i), i == len(toks)-1, seq))
		}
		return x.Decode(context.Background(), b)
	}
	// Fill sequence 0 up to 32 cells from the end.
	fill := textTokens(t, p, nCtx-32, 1)
	for i := 0; i < len(fill); i += 64 {
		require.NoError(t, decode(0, fill[i:min(i+64, len(fill))], int32(i)))
	}
	// 48 tokens: the first two ubatches would fit, the third not.
	err = decode(1, textTokens(t, p, 48, 2), 0)
	require.ErrorIs(t, err, llama.ErrContextFull)
	last, err := x.MaxPosition(1)
	require.NoError(t, err)
	assert.Equal(t, int32(-1), last, "a batch refused for a full cache leaves nothing in it")
	// And the 32 free cells are still free.
	require.NoError(t, decode(1, textTokens(t, p, 32, 3), 0))
}
