package vlm

import (
	"log/slog"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/vlm-go/vlm/internal/testmodel"
)

// A decode stopped by Abort logs nothing at Warn or Error: llama.cpp's
// "failed to compute graph" lines of an abort vlm asked for go to Debug.
// A real failure keeps its level.
func TestAbortedDecodeLogsNoErrors(t *testing.T) {
	m, _ := loadNative(t, testmodel.ProjectorMLP)
	rec := &recorder{}
	record(t, slog.LevelDebug, rec)

	x, err := NewContext(m, ContextParams{NCtx: 256, NBatch: 64, Threads: 1})
	require.NoError(t, err)
	defer x.Free()
	b, err := NewBatch(16, 0, 1, 1)
	require.NoError(t, err)
	defer b.Free()
	for i := 0; i < 16; i++ {
		require.NoError(t, b.Add(Token(i+1), int32(i), i == 15, 0))
	}
	x.Abort()
	require.ErrorIs(t, x.Decode(b), ErrCancelled)
	x.ClearAbort()

	assert.Empty(t, rec.atLeast(slog.LevelWarn), "an aborted decode logs no warnings or errors")
	debug := strings.Join(rec.atLeast(slog.LevelDebug), "\n")
	assert.Contains(t, debug, "compute status: 1", "the abort's lines are there, at Debug")
	assert.Contains(t, debug, "failed to decode, ret = 2")

	// The same lines for another status keep their level.
	emit(slog.LevelError, "process_ubatch: failed to compute graph, compute status: -1")
	emit(slog.LevelWarn, "decode: removing memory module entries for seq_id = 0, pos = [3, +inf)")
	assert.Equal(t, []string{
		"ERROR process_ubatch: failed to compute graph, compute status: -1",
		"WARN decode: removing memory module entries for seq_id = 0, pos = [3, +inf)",
	}, rec.atLeast(slog.LevelWarn))
}
