//go:build vlmtest

package vlm

// Tests of the log routing and the C++ exception guard through the hooks
// in testhooks.go (build tag vlmtest, set by ./build.sh test).

import (
	"bytes"
	"errors"
	"fmt"
	"log/slog"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestLogRoutingJoinsPiecesAndFilters(t *testing.T) {
	runtime.LockOSThread() // pieces are joined per thread, as llama.cpp writes them
	defer runtime.UnlockOSThread()
	buf := captureLogs(t, slog.LevelInfo)
	emitTestLog(levelInfo, "hello ")
	emitTestLog(levelCont, "world\nsecond line\n")
	emitTestLog(levelDebug, "dropped below the level\n")
	emitTestLog(levelError, "boom\n")
	out := buf.String()
	assert.Contains(t, out, `level=INFO msg="hello world" source=llama.cpp`)
	assert.Contains(t, out, `level=INFO msg="second line"`)
	assert.Contains(t, out, `level=ERROR msg=boom`)
	assert.NotContains(t, out, "dropped")
}

// TestCxxExceptionsAreCaught: a C++ exception thrown under the binding's
// wrappers comes back as ErrNativeException with its message, and the
// process goes on.
func TestCxxExceptionsAreCaught(t *testing.T) {
	for range 3 {
		err := cxxThrowTest("boom from C++")
		if !errors.Is(err, ErrNativeException) || !strings.Contains(err.Error(), "boom from C++") {
			t.Fatalf("got %v, want ErrNativeException with the message", err)
		}
	}
}

// TestLogLinesOfConcurrentThreadsDoNotInterleave: native threads writing
// lines in pieces at the same time each get their own lines back whole (the
// old code joined pieces in one process-wide buffer and mixed them).
func TestLogLinesOfConcurrentThreadsDoNotInterleave(t *testing.T) {
	r := &recorder{}
	record(t, slog.LevelError, r)
	const threads, lines, pieces = 2, 300, 6
	require.Equal(t, threads, logTestThreads(threads, lines, pieces))
	want := map[string]int{}
	for id := 0; id < threads; id++ {
		for l := 0; l < lines; l++ {
			var b strings.Builder
			fmt.Fprintf(&b, "t%d line %d:", id, l)
			for k := 0; k < pieces; k++ {
				fmt.Fprintf(&b, " t%d.%d", id, k)
			}
			want[b.String()]++
		}
	}
	got := map[string]int{}
	for _, l := range r.all() {
		got[l]++
	}
	assert.Equal(t, want, got)
}

// TestLogHandlerRunsWithoutALock: a handler may itself log through
// llama.cpp's callback and call SetLogger (the old code called handlers
// under its lock: this deadlocked).
func TestLogHandlerRunsWithoutALock(t *testing.T) {
	r := &recorder{}
	r.onRecord = func(msg string) {
		if msg == "outer" {
			emitTestLog(levelError, "inner\n")
			SetLogger(slog.New(r))
		}
	}
	record(t, slog.LevelError, r)
	done := make(chan struct{})
	go func() {
		defer close(done)
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		emitTestLog(levelError, "outer\n")
	}()
	select {
	case <-done:
	case <-time.After(2 * time.Minute): // a deadlock, not a slow machine
		t.Fatal("the handler deadlocked on the log routing's lock")
	}
	assert.Equal(t, []string{"inner", "outer"}, r.all())
}

// captureLogs routes native logs into a buffer for the duration of a test.
func captureLogs(t *testing.T, level slog.Level) *syncBuffer {
	t.Helper()
	buf := &syncBuffer{}
	prevLevel := LogLevel()
	SetLogger(slog.New(slog.NewTextHandler(buf, &slog.HandlerOptions{Level: slog.LevelDebug})))
	SetLogLevel(level)
	t.Cleanup(func() { SetLogger(nil); SetLogLevel(prevLevel) })
	return buf
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
