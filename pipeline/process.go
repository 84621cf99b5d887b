package pipeline

import (
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"syscall"
	"time"
)

// Process says where a pipeline's model runs (Options.Process).
type Process int

const (
	// SameProcess runs the model, projector, engine and image cache in the
	// calling process (the default): nothing crosses a process boundary,
	// and a crash in llama.cpp ends the program.
	SameProcess Process = iota
	// ChildProcess runs them in a child process of the program, supervised
	// by the Pipeline, which keeps the whole API (Run, Stream, RunBatch,
	// sessions and their history, Stats, EngineStats, ImageCacheStats,
	// cancellation, ErrOverloaded). The program re-executes itself as
	// package isolate does: it must call isolate.Main() first thing in main
	// (and a test binary in TestMain), else New fails with
	// isolate.ErrNotEnabled.
	//
	// Requests cross a Unix socket pair: the chat and its images as RGB
	// pixels (decoded in this process within Options.ImageMemory, as
	// usual), tokens back as they are sampled. When the child dies — a
	// signal (SIGSEGV, an abort in a GGML_ASSERT, SIGKILL from outside or
	// the OOM killer), an exit, or a hang found by its heartbeat — every
	// request in flight ends at once with a *CrashError (ErrChildCrashed:
	// retryable), and the child is started again after a backoff; requests
	// that arrive meanwhile wait for it within their context, or get
	// ErrOverloaded when Options.MaxWaiting are already waiting. Ready says
	// how it stands. Sessions go on after a restart: their history lives in
	// this process, and the next turn rebuilds the KV cache from it. A
	// crash loop (Supervisor.CrashLoopDeaths deaths within
	// Supervisor.CrashLoopWindow) stops the restarts, and every call fails
	// with ErrCrashLoop from then on.
	//
	// Model and Projector return nil in this mode (they live in the
	// child); ModelPath still names the model.
	ChildProcess
)

// String names the mode.
func (m Process) String() string {
	switch m {
	case SameProcess:
		return "same process"
	case ChildProcess:
		return "child process"
	}
	return fmt.Sprintf("Process(%d)", int(m))
}

// Supervisor configures the supervision of a ChildProcess pipeline. The
// zero value is sensible.
type Supervisor struct {
	// HangTimeout is how long the child may go without a heartbeat, or
	// with requests running and no decode step, before it is killed as
	// hung; 0 means 60 s. It must exceed the longest single step: a large
	// image's encoding on a slow CPU.
	HangTimeout time.Duration
	// LoadTimeout bounds a start of the child: loading the model and
	// projector; 0 means 10 minutes.
	LoadTimeout time.Duration
	// RestartBackoff is the wait before the first restart after a death;
	// it doubles with each death within CrashLoopWindow, up to
	// MaxRestartBackoff. 0 means 100 ms.
	RestartBackoff time.Duration
	// MaxRestartBackoff bounds the wait; 0 means 10 s.
	MaxRestartBackoff time.Duration
	// CrashLoopDeaths deaths within CrashLoopWindow stop the restarts;
	// 0 means 5 (and -1 never stops).
	CrashLoopDeaths int
	// CrashLoopWindow: 0 means 5 minutes.
	CrashLoopWindow time.Duration
	// Logger receives the child's log lines (llama.cpp's warnings and
	// errors) and the supervisor's own (deaths, restarts); nil means
	// slog.Default().
	Logger *slog.Logger
}

func (s Supervisor) withDefaults() (Supervisor, error) {
	if s.HangTimeout < 0 || s.LoadTimeout < 0 || s.RestartBackoff < 0 || s.MaxRestartBackoff < 0 || s.CrashLoopDeaths < -1 || s.CrashLoopWindow < 0 {
		return s, fmt.Errorf("negative option in Supervisor %+v: %w", s, ErrInvalidOptions)
	}
	if s.HangTimeout == 0 {
		s.HangTimeout = time.Minute
	}
	if s.LoadTimeout == 0 {
		s.LoadTimeout = 10 * time.Minute
	}
	if s.RestartBackoff == 0 {
		s.RestartBackoff = 100 * time.Millisecond
	}
	if s.MaxRestartBackoff == 0 {
		s.MaxRestartBackoff = 10 * time.Second
	}
	if s.CrashLoopDeaths == 0 {
		s.CrashLoopDeaths = 5
	}
	if s.CrashLoopWindow == 0 {
		s.CrashLoopWindow = 5 * time.Minute
	}
	if s.Logger == nil {
		s.Logger = slog.Default()
	}
	return s, nil
}

// beat is the child's heartbeat interval.
func (s Supervisor) beat() time.Duration {
	return min(max(s.HangTimeout/8, 10*time.Millisecond), time.Second)
}

var (
	// ErrChildCrashed: the child process of a ChildProcess pipeline died
	// while the request was in flight (the error is a *CrashError). The
	// request can be retried: the child is being restarted.
	ErrChildCrashed = errors.New("pipeline: the model's process died")
	// ErrCrashLoop: the child process died Supervisor.CrashLoopDeaths
	// times within Supervisor.CrashLoopWindow; the pipeline stopped
	// restarting it and fails every call (a server reports itself not
	// ready). The error also matches the last death's *CrashError.
	ErrCrashLoop = errors.New("pipeline: the model's process keeps dying; restarts stopped")
	// ErrRestarting: Ready's answer while the child is being started again.
	ErrRestarting = errors.New("pipeline: the model's process is restarting")
	// ErrNotInChildProcess: the call asks for what a ChildProcess pipeline
	// does not carry across to its child yet — several choices
	// (StreamChoices, RunChoices with n > 1), log-probabilities, tools. It
	// matches ErrInvalidOptions (and so vlm.ErrInvalidArgument): a server
	// answers 400.
	ErrNotInChildProcess = fmt.Errorf("pipeline: n > 1, logprobs and tools are not available in ChildProcess mode yet: %w", ErrInvalidOptions)
)

// CrashError is how the child process of a ChildProcess pipeline died, as
// the requests in flight see it. errors.Is(err, ErrChildCrashed) holds.
type CrashError struct {
	// PID was the child's process ID.
	PID int
	// Signal ended the child: SIGKILL from outside, from the OOM killer or
	// from the supervisor (Hung); the signal of a crash report (SIGSEGV,
	// SIGABRT from an abort(), SIGBUS...) when the Go runtime caught it and
	// exited; 0 for a plain exit.
	Signal syscall.Signal
	// ExitCode is the child's exit status; -1 when a signal killed it.
	ExitCode int
	// Hung is set when the supervisor killed the child for missing
	// heartbeats (or no progress with requests running).
	Hung bool
	// Stage is what the request was doing: "load" (the child was starting),
	// "prompt" (evaluating its prompt: image encoding and prefill, or
	// waiting for a sequence), "decode" (generating).
	Stage string
	// Report is the first line of the child's crash report, e.g.
	// "SIGSEGV: segmentation violation" or "fatal error: ...", if any.
	Report string
	// Log holds the child's last log lines before it died (llama.cpp's and
	// ggml's: a GGML_ASSERT's message, for one).
	Log []string
}

func (e *CrashError) Error() string {
	var b strings.Builder
	b.WriteString("pipeline: the model's process")
	if e.PID > 0 {
		fmt.Fprintf(&b, " (pid %d)", e.PID)
	}
	switch {
	case e.Hung:
		fmt.Fprintf(&b, " hung and was killed")
	case e.ExitCode == -1 && e.Signal != 0:
		fmt.Fprintf(&b, " was killed by %v", signalName(e.Signal))
	case e.Signal != 0:
		fmt.Fprintf(&b, " crashed with %v (exit status %d)", signalName(e.Signal), e.ExitCode)
	default:
		fmt.Fprintf(&b, " exited with status %d", e.ExitCode)
	}
	if e.Stage != "" {
		fmt.Fprintf(&b, " during %s", e.Stage)
	}
	if e.Report != "" {
		fmt.Fprintf(&b, " (%s)", e.Report)
	}
	if len(e.Log) > 0 {
		fmt.Fprintf(&b, "; last log lines: %s", strings.Join(e.Log, " | "))
	}
	b.WriteString("; retry: it is being restarted")
	return b.String()
}

// Unwrap returns ErrChildCrashed.
func (e *CrashError) Unwrap() error { return ErrChildCrashed }

// Temporary reports true: the request may be retried.
func (e *CrashError) Temporary() bool { return true }

func signalName(s syscall.Signal) string {
	for name, v := range crashSignals {
		if v == s {
			return name
		}
	}
	return s.String()
}

// crashSignals are the signals a Go crash report starts with.
var crashSignals = map[string]syscall.Signal{
	"SIGSEGV": syscall.SIGSEGV, "SIGABRT": syscall.SIGABRT, "SIGBUS": syscall.SIGBUS, "SIGFPE": syscall.SIGFPE,
	"SIGILL": syscall.SIGILL, "SIGTRAP": syscall.SIGTRAP, "SIGKILL": syscall.SIGKILL, "SIGQUIT": syscall.SIGQUIT,
	"SIGSYS": syscall.SIGSYS,
}

// Ready reports whether the pipeline takes requests now: nil when it does;
// ErrClosed (ErrShuttingDown after Shutdown); for a ChildProcess pipeline
// an error wrapping ErrRestarting while its child is being started again
// (requests wait for it), or ErrCrashLoop once restarts have stopped. A
// server's readiness probe answers 503 while it is not nil.
func (p *Pipeline) Ready() error {
	if p.sup != nil {
		return p.sup.ready()
	}
	if p.isClosed() {
		return ErrClosed
	}
	if p.draining.Load() {
		return ErrShuttingDown
	}
	return nil
}

// ModelPath returns the path of the model file the pipeline loaded (the
// Q8_0 copy with QuantizeQ8_0).
func (p *Pipeline) ModelPath() string { return p.modelPath }

// Restarts returns how many times the child of a ChildProcess pipeline was
// started again after a death (0 in SameProcess mode).
func (p *Pipeline) Restarts() int {
	if p.sup == nil {
		return 0
	}
	return p.sup.restartCount()
}
