package vlm

import (
	"context"
	"log/slog"
	"strings"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/vlm-go/vlm/internal/testmodel"
)

// abortRecorder is a slog handler that keeps every record.
type abortRecorder struct {
	mu      sync.Mutex
	records []slog.Record
}

func (r *abortRecorder) Enabled(context.Context, slog.Level) bool { return true }
func (r *abortRecorder) Handle(_ context.Context, rec slog.Record) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.records = append(r.records, rec)
	return nil
}
func (r *abortRecorder) WithAttrs([]slog.Attr) slog.Handler { return r }
func (r *abortRecorder) WithGroup(string) slog.Handler      { return r }

func (r *abortRecorder) lines(min slog.Level) []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []string
	for _, rec := range r.records {
		if rec.Level >= min {
			out = append(out, rec.Level.String()+" "+rec.Message)
		}
	}
	return out
}

// A decode stopped by Abort logs nothing at Warn or Error: llama.cpp's
// "failed to compute graph" lines of an abort vlm asked for go to Debug.
// A real failure keeps its level.
func TestAbortedDecodeLogsNoErrors(t *testing.T) {
	m, _ := loadNative(t, testmodel.ProjectorMLP)
	rec := &abortRecorder{}
	SetLogger(slog.New(rec))
	defer SetLogger(nil)
	SetLogLevel(slog.LevelDebug)
	defer SetLogLevel(slog.LevelWarn)

	x, err := NewContext(m, ContextParams{NCtx: 256, NBatch: 64, Threads: 1})
	require.NoError(t, err)
	defer x.Free()
	b, err := NewBatch(16, 0, 1, 1)
	require.NoError(t, err)
	defer b.Free()
	for i := 0; i < 16; i++ {
		require.NoError(t, b.Add(Token(i+1), int32(i), []int32{0}, i == 15))
	}
	x.Abort()
	require.ErrorIs(t, x.Decode(b), ErrCancelled)
	x.ClearAbort()

	assert.Empty(t, rec.lines(slog.LevelWarn), "an aborted decode logs no warnings or errors")
	debug := strings.Join(rec.lines(slog.LevelDebug), "\n")
	assert.Contains(t, debug, "compute status: 1", "the abort's lines are there, at Debug")
	assert.Contains(t, debug, "failed to decode, ret = 2")

	// The same lines for another status keep their level.
	emit(slog.LevelError, "process_ubatch: failed to compute graph, compute status: -1")
	emit(slog.LevelWarn, "decode: removing memory module entries for seq_id = 0, pos = [3, +inf)")
	assert.Equal(t, []string{
		"ERROR process_ubatch: failed to compute graph, compute status: -1",
		"WARN decode: removing memory module entries for seq_id = 0, pos = [3, +inf)",
	}, rec.lines(slog.LevelWarn))
}
