package vlm

/*
#include "binding.h"
*/
import "C"

import (
	"context"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
)

// logger is where native log lines go; nil means slog.Default(). binding.c
// joins the pieces of a line per thread, so vlmGoLog gets whole lines and
// calls the handler with no lock held: handlers may block, log natively
// themselves or call SetLogger.
var logger atomic.Pointer[slog.Logger]

// minLogLevel is the lowest level forwarded; lines below it are dropped
// before they are converted to Go strings. It is slog.LevelWarn by default.
var minLogLevel atomic.Int64

func init() { minLogLevel.Store(int64(slog.LevelWarn)) }

// SetLogLevel sets the lowest level of llama.cpp, ggml and mtmd log lines that
// reach the logger; lines below it are dropped. The default is slog.LevelWarn,
// which keeps model loading quiet. Use slog.LevelDebug to see everything.
func SetLogLevel(level slog.Level) { minLogLevel.Store(int64(level)) }

// LogLevel returns the level set by SetLogLevel.
func LogLevel() slog.Level { return slog.Level(minLogLevel.Load()) }

// SetLogger sets the logger that receives llama.cpp's, ggml's and mtmd's log
// lines, each as one record with the attribute source=llama.cpp. A nil logger
// means slog.Default(), the initial setting.
func SetLogger(l *slog.Logger) {
	Init()
	logger.Store(l)
}

// slogLevel maps a ggml log level to a slog level; ok is false for
// GGML_LOG_LEVEL_CONT, which continues the previous line.
func slogLevel(level C.int) (l slog.Level, ok bool) {
	switch level {
	case C.GGML_LOG_LEVEL_DEBUG:
		return slog.LevelDebug, true
	case C.GGML_LOG_LEVEL_WARN:
		return slog.LevelWarn, true
	case C.GGML_LOG_LEVEL_ERROR:
		return slog.LevelError, true
	case C.GGML_LOG_LEVEL_CONT:
		return 0, false
	default: // GGML_LOG_LEVEL_NONE, GGML_LOG_LEVEL_INFO
		return slog.LevelInfo, true
	}
}

//export vlmGoLog
func vlmGoLog(level C.int, text *C.char, n C.int) {
	l, ok := slogLevel(level)
	if !ok {
		l = slog.LevelInfo // binding.c resolves continuations; not reached
	}
	if l >= slog.LevelError {
		line := C.GoStringN(text, n)
		recentErrors.note(line)
		if l >= slog.Level(minLogLevel.Load()) {
			emit(l, line)
		}
		return
	}
	if l < slog.Level(minLogLevel.Load()) {
		return
	}
	emit(l, C.GoStringN(text, n))
}

// errorRing keeps llama.cpp's last error lines, so that a failed load can
// say why (llama.cpp returns NULL and logs the cause).
type errorRing struct {
	mu    sync.Mutex
	seq   uint64
	lines [32]string
}

var recentErrors errorRing

func (r *errorRing) note(line string) {
	r.mu.Lock()
	r.lines[r.seq%uint64(len(r.lines))] = line
	r.seq++
	r.mu.Unlock()
}

// mark returns a position; since returns the error lines logged after it.
func (r *errorRing) mark() uint64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.seq
}

func (r *errorRing) since(mark uint64) []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.seq-mark > uint64(len(r.lines)) {
		mark = r.seq - uint64(len(r.lines))
	}
	var out []string
	for i := mark; i < r.seq; i++ {
		out = append(out, r.lines[i%uint64(len(r.lines))])
	}
	return out
}

// loadCause is what llama.cpp or mtmd logged as errors since mark, for a
// load error: "error loading model vocabulary: Index out of array bounds
// in precompiled charsmap!" rather than only "load failed". Lines that
// only say that the load failed, and function-name prefixes, are left out.
func loadCause(mark uint64) string {
	var parts []string
	seen := map[string]bool{}
	for _, line := range recentErrors.since(mark) {
		line = strings.TrimSpace(line)
		// "llama_model_load: error loading model: X" → "X"
		for {
			fn, rest, ok := strings.Cut(line, ": ")
			if !ok || strings.ContainsAny(fn, " ") {
				break
			}
			line = rest
		}
		line = strings.TrimPrefix(line, "error loading model: ")
		low := strings.ToLower(line)
		if line == "" || seen[line] || strings.HasPrefix(low, "failed to load model") || low == "failed to load" {
			continue
		}
		seen[line] = true
		parts = append(parts, line)
	}
	if len(parts) == 0 {
		return ""
	}
	return strings.Join(parts, "; ")
}

// demoted are warnings llama.cpp prints in normal use that a library user
// cannot act on; they are logged at Info instead.
var demoted = []string{
	"llama_context: n_ctx_seq (", // "... < n_ctx_train: the full capacity of the model will not be utilized"
}

// abortLines are what llama.cpp logs, as errors, when a decode stops
// because its abort callback said so — which only happens when vlm was
// asked to cancel (Abort, a cancelled context.Context). A cancelled request
// is not an error: they are logged at Debug. Status 1 is GGML_STATUS_ABORTED
// and llama_decode's 2 means aborted, so other failures keep their level.
var abortLines = []string{
	"graph_compute: ggml_backend_sched_graph_compute_async failed with error 1",
	"process_ubatch: failed to compute graph, compute status: 1",
	"llama_decode: failed to decode, ret = 2",
}

// abortCleanup is what llama.cpp warns between the abort lines (it drops
// the aborted batch's KV entries); it is demoted only right after an abort
// line, since other failures print it too.
const abortCleanup = "decode: removing memory module entries for seq_id"

// afterAbort is set by an abort line and cleared by the last one
// (llama_decode's); lines of concurrent decodes could in principle meet in
// between, and then a foreign cleanup warning would be logged at Debug.
var afterAbort atomic.Bool

// abortLevel returns Debug for the lines an abort produces, else level.
func abortLevel(level slog.Level, line string) slog.Level {
	if level < slog.LevelWarn {
		return level
	}
	for i, p := range abortLines {
		if strings.HasPrefix(line, p) {
			afterAbort.Store(i < len(abortLines)-1)
			return slog.LevelDebug
		}
	}
	if strings.HasPrefix(line, abortCleanup) && afterAbort.Load() {
		return slog.LevelDebug
	}
	return level
}

func emit(level slog.Level, line string) {
	line = strings.TrimRight(line, " \r\t")
	if line == "" {
		return
	}
	if level = abortLevel(level, line); level < slog.Level(minLogLevel.Load()) {
		return
	}
	if level == slog.LevelWarn {
		for _, p := range demoted {
			if strings.HasPrefix(line, p) {
				level = slog.LevelInfo
				if level < slog.Level(minLogLevel.Load()) {
					return
				}
			}
		}
	}
	currentLogger().Log(context.Background(), level, line, slog.String("source", "llama.cpp"))
}

// currentLogger is the logger of SetLogger, or slog.Default().
func currentLogger() *slog.Logger {
	if lg := logger.Load(); lg != nil {
		return lg
	}
	return slog.Default()
}

// Log writes one of vlm's own messages (not a native line) to the logger
// set by SetLogger, with the attribute source=vlm, if level is at least
// LogLevel(). vlm's packages use it for warnings a user can act on, such as
// a projector that seems to belong to another model family.
func Log(level slog.Level, msg string, args ...any) {
	if level < slog.Level(minLogLevel.Load()) {
		return
	}
	currentLogger().Log(context.Background(), level, msg, append(args, slog.String("source", "vlm"))...)
}
