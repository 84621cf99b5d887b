package llama_test

import (
	"context"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/vlm-go/vlm/gguf"
	"github.com/vlm-go/vlm/llama"
)

// TestAbortBeforeDecodeCancelsTheNextDecode pins the documented behaviour:
// an Abort while no Decode runs is kept, cancels the next Decode (only that
// one, however many Aborts came before it), and the Decode after succeeds.
func TestAbortBeforeDecodeCancelsTheNextDecode(t *testing.T) {
	m, _ := loadTiny(t, gguf.TypeF16)
	x := newCtx(t, m, llama.ContextOptions{ContextSize: 64, BatchSize: 16, Threads: 1})
	b, err := x.NewBatch(4)
	require.NoError(t, err)
	defer b.Close()
	require.NoError(t, b.AddSequence([]llama.Token{1, 2, 3}, 0, 0, true))

	x.Abort()
	x.Abort()
	assert.ErrorIs(t, x.Decode(context.Background(), b), llama.ErrCancelled, "an Abort before Decode cancels it")
	require.NoError(t, x.ClearMemory())
	require.NoError(t, x.Decode(context.Background(), b), "one cancelled Decode consumes the pending Aborts")

	// A cancelled ctx does not leave anything pending either.
	cctx, cancel := context.WithCancel(context.Background())
	cancel()
	assert.ErrorIs(t, x.Decode(cctx, b), llama.ErrCancelled)
	require.NoError(t, x.ClearMemory())
	require.NoError(t, x.Decode(context.Background(), b))
}

// TestAbortRacesClose calls Abort from other goroutines, and lets a
// context.Context be cancelled just as Decode returns, while the context is
// closed: neither may touch the freed native context (under -race the old
// code reported the abort flag's pointer read by Abort and cleared by Free).
func TestAbortRacesClose(t *testing.T) {
	m, _ := loadTiny(t, gguf.TypeF16)
	for i := 0; i < 20; i++ {
		x, err := m.NewContext(llama.ContextOptions{ContextSize: 64, BatchSize: 16, Threads: 1})
		require.NoError(t, err)
		b, err := x.NewBatch(8)
		require.NoError(t, err)
		require.NoError(t, b.AddSequence([]llama.Token{1, 2, 3, 4, 5, 6, 7, 8}, 0, 0, true))
		ctx, cancel := context.WithCancel(context.Background())
		var wg sync.WaitGroup
		start := make(chan struct{})
		wg.Add(2)
		go func() {
			defer wg.Done()
			<-start
			for range 50 {
				x.Abort()
			}
		}()
		go func() {
			defer wg.Done()
			<-start
			cancel()
		}()
		close(start)
		_ = x.Decode(ctx, b) // cancelled or not, depending on the timing
		require.NoError(t, x.Close())
		x.Abort()
		wg.Wait()
		x.Abort() // after Close: nothing to stop, and no crash
		assert.ErrorIs(t, x.Decode(context.Background(), b), llama.ErrClosed)
		b.Close()
	}
}
