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

// logState holds where native log lines go. llama.cpp, ggml and mtmd write
// lines in pieces (a GGML_LOG_LEVEL_CONT piece continues the previous one), so
// pieces are buffered until a newline completes a line.
var logState struct {
	mu      sync.Mutex
	logger  *slog.Logger // nil means slog.Default()
	partial strings.Builder
	level   slog.Level // level of the line in partial
}

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
func SetLogger(logger *slog.Logger) {
	Init()
	logState.mu.Lock()
	logState.logger = logger
	logState.mu.Unlock()
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
func vlmGoLog(level C.int, text *C.char) {
	l, ok := slogLevel(level)
	logState.mu.Lock()
	defer logState.mu.Unlock()
	if !ok {
		l = logState.level
	}
	if l < slog.Level(minLogLevel.Load()) {
		if ok {
			logState.partial.Reset()
		}
		logState.level = l
		return
	}
	if ok && logState.partial.Len() > 0 && logState.level != l {
		// A new line at another level: flush what the last one left.
		emitLocked(logState.level, logState.partial.String())
		logState.partial.Reset()
	}
	logState.level = l
	logState.partial.WriteString(C.GoString(text))
	s := logState.partial.String()
	i := strings.LastIndexByte(s, '\n')
	if i < 0 {
		return
	}
	logState.partial.Reset()
	logState.partial.WriteString(s[i+1:])
	for _, line := range strings.Split(s[:i], "\n") {
		emitLocked(l, line)
	}
}

// demoted are warnings llama.cpp prints in normal use that a library user
// cannot act on; they are logged at Info instead.
var demoted = []string{
	"llama_context: n_ctx_seq (", // "... < n_ctx_train: the full capacity of the model will not be utilized"
}

func emitLocked(level slog.Level, line string) {
	line = strings.TrimRight(line, " \r\t")
	if line == "" {
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
	logger := logState.logger
	if logger == nil {
		logger = slog.Default()
	}
	logger.Log(context.Background(), level, line, slog.String("source", "llama.cpp"))
}
