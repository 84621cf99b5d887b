package llama_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/vlm-go/vlm/gguf"
	"github.com/vlm-go/vlm/llama"
)

func TestAccessorsAndInfo(t *testing.T) {
	m, spec := loadTiny(t, gguf.TypeF16)
	assert.Equal(t, "llama", m.Architecture())
	v := m.Vocab()
	assert.Less(t, int(v.EOT()), v.Size())
	assert.Less(t, int(v.NL()), v.Size())
	assert.Equal(t, spec.Text.NEmbd, mustInfo(t, m).NEmbd)
	require.NoError(t, m.Close())
	_, err := m.Info()
	assert.ErrorIs(t, err, llama.ErrClosed)
}

func TestBatchAccessors(t *testing.T) {
	m, _ := loadTiny(t, gguf.TypeF16)
	b, err := m.NewBatch(8, 1)
	require.NoError(t, err)
	assert.Equal(t, 8, b.Cap())
	assert.Zero(t, b.Len())
	require.NoError(t, b.AddSequence([]llama.Token{1, 2, 3}, 0, 0, true))
	assert.Equal(t, 3, b.Len())
	require.NoError(t, b.SetPositions([]int32{5, 6, 7}))
	b.Clear()
	assert.Zero(t, b.Len())
	require.NoError(t, b.Close())
	assert.Zero(t, b.Len())
	assert.Zero(t, b.Cap())
	assert.ErrorIs(t, b.SetPositions(nil), llama.ErrClosed)
	assert.ErrorIs(t, b.SetEmbeddings(nil, 0, 0), llama.ErrClosed)
	_, err = llama.NewEmbeddingBatch(4, 0, 1)
	assert.ErrorIs(t, err, llama.ErrInvalidArgument)
}

// TestAbortFromAnotherGoroutine stops a long decode from outside.
func TestAbortFromAnotherGoroutine(t *testing.T) {
	m, _ := loadTiny(t, gguf.TypeF32)
	x := newCtx(t, m, llama.ContextOptions{ContextSize: 4096, BatchSize: 4096, Threads: 1})
	b, err := x.NewBatch(4096)
	require.NoError(t, err)
	defer b.Close()
	for i := 0; i < 4096; i++ {
		require.NoError(t, b.Add(llama.Token(1+i%100), int32(i), i == 4095))
	}
	done := make(chan error)
	go func() { done <- x.Decode(context.Background(), b) }()
	time.Sleep(5 * time.Millisecond)
	x.Abort()
	err = <-done
	require.NoError(t, x.ClearMemory())
	b.Clear()
	require.NoError(t, b.Add(1, 0, true))
	if err == nil {
		// The decode finished before the abort arrived: the Abort is kept
		// and cancels the next Decode instead.
		assert.ErrorIs(t, x.Decode(context.Background(), b), llama.ErrCancelled)
	} else {
		assert.True(t, errors.Is(err, llama.ErrCancelled), "got %v", err)
	}
	require.NoError(t, x.Decode(context.Background(), b), "the context decodes again after an abort")
}

// TestLogitsIntoReusesTheBuffer: LogitsInto gives Logits' values in the
// caller's buffer without allocating when it is large enough.
func TestLogitsIntoReusesTheBuffer(t *testing.T) {
	m, _ := loadTiny(t, gguf.TypeF16)
	x, err := m.NewContext(llama.ContextOptions{ContextSize: 64, Threads: 1})
	require.NoError(t, err)
	defer x.Close()
	toks, err := m.Vocab().Tokenize("hello", true, false)
	require.NoError(t, err)
	b, err := x.NewBatch(len(toks))
	require.NoError(t, err)
	defer b.Close()
	require.NoError(t, b.AddSequence(toks, 0, 0, true))
	require.NoError(t, x.Decode(context.Background(), b))
	want, err := x.Logits(-1)
	require.NoError(t, err)
	buf := make([]float32, 0, len(want))
	got, err := x.LogitsInto(-1, buf)
	require.NoError(t, err)
	require.Equal(t, want, got)
	require.Equal(t, &buf[:1][0], &got[0], "the caller's buffer is used")
	allocs := testing.AllocsPerRun(20, func() { _, _ = x.LogitsInto(-1, buf) })
	require.Zero(t, allocs)
}

// mustInfo is m.Info() of an open model.
func mustInfo(t *testing.T, m *llama.Model) llama.Info {
	t.Helper()
	info, err := m.Info()
	require.NoError(t, err)
	return info
}
