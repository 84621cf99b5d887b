package vlm

import (
	"context"
	"log/slog"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/vlm-go/vlm/internal/testmodel"
)

// recorder is a slog.Handler that keeps every message; onRecord, if set,
// runs inside Handle.
type recorder struct {
	mu       sync.Mutex
	lines    []string
	levels   []slog.Level // of each line
	onRecord func(msg string)
}

func (r *recorder) Enabled(context.Context, slog.Level) bool { return true }
func (r *recorder) WithAttrs([]slog.Attr) slog.Handler       { return r }
func (r *recorder) WithGroup(string) slog.Handler            { return r }
func (r *recorder) Handle(_ context.Context, rec slog.Record) error {
	if r.onRecord != nil {
		r.onRecord(rec.Message)
	}
	r.mu.Lock()
	r.lines = append(r.lines, rec.Message)
	r.levels = append(r.levels, rec.Level)
	r.mu.Unlock()
	return nil
}

// atLeast returns "LEVEL message" of the records at min or above.
func (r *recorder) atLeast(min slog.Level) []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []string
	for i, l := range r.lines {
		if r.levels[i] >= min {
			out = append(out, r.levels[i].String()+" "+l)
		}
	}
	return out
}

func (r *recorder) all() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.lines...)
}

func record(t *testing.T, level slog.Level, r *recorder) {
	t.Helper()
	prev := LogLevel()
	SetLogger(slog.New(r))
	SetLogLevel(level)
	t.Cleanup(func() { SetLogger(nil); SetLogLevel(prev) })
}

// TestLogTwoContextsDecodingConcurrently records every native line at Debug
// while two contexts are made and decode at once: each record is one whole
// line, and each context's lines arrive as often as with one context alone.
func TestLogTwoContextsDecodingConcurrently(t *testing.T) {
	m, _ := loadNative(t, testmodel.ProjectorMLP)
	work := func() {
		x, err := NewContext(m, ContextParams{NCtx: 64, NBatch: 16, Threads: 1})
		if !assert.NoError(t, err) {
			return
		}
		defer x.Free()
		b, err := NewBatch(8, 0, 1, 1)
		if !assert.NoError(t, err) {
			return
		}
		defer b.Free()
		for i := 0; i < 8; i++ {
			assert.NoError(t, b.Add(Token(1+i), int32(i), i == 7, 0))
		}
		assert.NoError(t, x.Decode(b))
	}
	one := &recorder{}
	record(t, slog.LevelDebug, one)
	work()
	alone := map[string]int{}
	for _, l := range one.all() {
		alone[l]++
	}
	require.NotEmpty(t, alone, "a context logs at Debug")

	two := &recorder{}
	record(t, slog.LevelDebug, two)
	var wg sync.WaitGroup
	for range 2 {
		wg.Add(1)
		go func() { defer wg.Done(); work() }()
	}
	wg.Wait()
	got := map[string]int{}
	for _, l := range two.all() {
		assert.NotContains(t, l, "\n")
		got[l]++
	}
	for l, n := range alone {
		assert.Equal(t, 2*n, got[l], "line %q", l)
	}
}
