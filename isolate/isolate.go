// Package isolate tries a model file in a child process before the program
// loads it: what vlm's validation cannot foresee (llama.cpp has over a
// hundred architectures, and a malformed file can still make it abort or
// crash) then ends the child, not the program.
//
// Check re-executes the program itself (os.Executable) with an environment
// variable that makes Main run the check instead of the program: load the
// model, create a small context, decode a few tokens, load the projector
// and encode a small picture, render the chat template. A crash, a hang
// past Options.Timeout or a failure there becomes an error — ErrCrashed,
// ErrTimeout or ErrFailed — carrying the child's last log lines. A program
// opts in by calling Main first thing in main (and a test binary in
// TestMain):
//
//	func main() {
//		isolate.Main()
//		...
//		if err := isolate.Check(ctx, modelPath, projPath, isolate.Options{}); err != nil {
//			return err // "this file crashes llama.cpp: ..."
//		}
//		p, err := pipeline.New(ctx, modelPath, projPath, pipeline.Options{})
//
// pipeline.Options.Isolated does this inside pipeline.New. A check costs a
// process start and a model load (tens of milliseconds for small files,
// seconds for large ones on a cold page cache).
package isolate

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"image"
	"image/color"
	"os"
	"os/exec"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/vlm-go/vlm"
	"github.com/vlm-go/vlm/llama"
	"github.com/vlm-go/vlm/mtmd"
	"github.com/vlm-go/vlm/sampler"
	"github.com/vlm-go/vlm/template"
)

// Errors of Check.
var (
	// ErrCrashed: the child process died (a signal, an abort) while
	// trying the file: loading it in this process would have killed it.
	ErrCrashed = errors.New("isolate: the file crashes llama.cpp")
	// ErrTimeout: the child did not finish within Options.Timeout.
	ErrTimeout = errors.New("isolate: trying the file timed out")
	// ErrFailed: the child tried the file and got an error (vlm's own
	// validation or llama.cpp's): loading it here would fail the same way.
	ErrFailed = errors.New("isolate: the file failed its trial")
	// ErrNotEnabled: the program did not call Main first, so it cannot be
	// re-executed as a child safely.
	ErrNotEnabled = errors.New("isolate: call isolate.Main() first thing in main (and in TestMain) to enable isolated checks")
)

// Options configure Check.
type Options struct {
	// Timeout bounds the child; 0 means 2 minutes.
	Timeout time.Duration
	// GPULayers and NoGPU are passed to the child's load, so that the
	// trial runs where the real load will (see llama.LoadOptions).
	GPULayers int
	NoGPU     bool
	// Tokens is how many tokens the child decodes; 0 means 4.
	Tokens int
}

// The child's environment variable and its arguments.
const (
	envChild = "VLM_ISOLATE_CHILD"
	envArgs  = "VLM_ISOLATE_ARGS"
)

var enabled atomic.Bool

// children are the other child programs Main runs, by name (RegisterChild).
var children = map[string]func(){}

// RegisterChild makes Main run fn, then exit 0, in a process started with
// ChildEnv(name) in its environment: how package pipeline runs its model
// in a child process of the program (pipeline.ChildProcess). Call it from
// an init function; name must not be "1".
func RegisterChild(name string, fn func()) {
	if name == "" || name == "1" || children[name] != nil {
		panic("isolate: RegisterChild: empty, reserved or duplicate name " + name)
	}
	children[name] = fn
}

// ChildEnv is the environment entry ("KEY=VALUE") that makes Main run the
// child registered under name.
func ChildEnv(name string) string { return envChild + "=" + name }

// Enabled reports whether Main was called and returned: the program can
// be re-executed as a child.
func Enabled() bool { return enabled.Load() }

// childArgs is what the parent passes the child (JSON in envArgs).
type childArgs struct {
	Model, Projector string
	GPULayers        int
	NoGPU            bool
	Tokens           int
}

// childResult is what the child prints on its last stdout line.
type childResult struct {
	OK    bool   `json:"ok"`
	Error string `json:"error,omitempty"`
	Stage string `json:"stage,omitempty"`
}

// Main runs the isolated check and exits when this process is a child
// started by Check; otherwise it returns at once, and Check is enabled.
// Call it first thing in main (and in TestMain).
func Main() {
	switch v := os.Getenv(envChild); {
	case v == "1":
	case v != "" && children[v] != nil:
		children[v]()
		os.Exit(0)
	default:
		enabled.Store(true)
		return
	}
	var a childArgs
	res := childResult{OK: true}
	if err := json.Unmarshal([]byte(os.Getenv(envArgs)), &a); err != nil {
		res = childResult{Error: "bad arguments: " + err.Error(), Stage: "start"}
	} else if stage, err := trial(a); err != nil {
		res = childResult{Error: err.Error(), Stage: stage}
	}
	out, _ := json.Marshal(res)
	fmt.Fprintf(os.Stdout, "\n%s\n", out)
	if res.OK {
		os.Exit(0)
	}
	os.Exit(3)
}

// envFault makes the child fail on purpose (tests of this package only):
// "abort" sends it SIGABRT, "hang" makes it sleep.
const envFault = "VLM_ISOLATE_TEST_FAULT"

// trial is the child's work; it returns the stage that failed.
func trial(a childArgs) (string, error) {
	ctx := context.Background()
	switch os.Getenv(envFault) {
	case "abort":
		_ = syscall.Kill(os.Getpid(), syscall.SIGABRT)
		time.Sleep(time.Minute)
	case "hang":
		time.Sleep(time.Hour)
	}
	stage("load model")
	m, err := llama.Load(ctx, a.Model, llama.LoadOptions{GPULayers: a.GPULayers, NoGPU: a.NoGPU})
	if err != nil {
		return "load model", err
	}
	defer m.Close()
	stage("create context")
	x, err := m.NewContext(llama.ContextOptions{ContextSize: 512, BatchSize: 512, Threads: 1})
	if err != nil {
		return "create context", err
	}
	defer x.Close()
	stage("decode")
	toks, err := m.Vocab().Tokenize("Hello, what is in this picture?", true, false)
	if err != nil {
		return "tokenize", err
	}
	b, err := x.NewBatch(len(toks))
	if err != nil {
		return "decode", err
	}
	defer b.Close()
	if err := b.AddSequence(toks, 0, 0, true); err != nil {
		return "decode", err
	}
	if err := x.Decode(ctx, b); err != nil {
		return "decode", err
	}
	s, err := sampler.New(m, sampler.Config{})
	if err != nil {
		return "sampler", err
	}
	defer s.Close()
	n := a.Tokens
	if n <= 0 {
		n = 4
	}
	gen := llama.Generate(ctx, x, s, llama.GenerateOptions{Pos: int32(len(toks)), MaxTokens: n})
	for _, err := range gen.Tokens() {
		if err != nil {
			return "generate", err
		}
	}
	marker := vlm.MediaMarker()
	if a.Projector != "" {
		stage("load projector")
		p, err := mtmd.Load(ctx, a.Projector, m, mtmd.Options{Threads: 1, NoGPU: a.NoGPU})
		if err != nil {
			return "load projector", err
		}
		defer p.Close()
		marker = p.Marker()
		img, err := mtmd.ImageFromGo(testPicture())
		if err != nil {
			return "image", err
		}
		if err := x.ClearMemory(); err != nil {
			return "encode", err
		}
		stage("encode image")
		chunks, err := p.Tokenize(ctx, "What is in "+p.Marker()+"?", []*mtmd.Image{img}, mtmd.TokenizeOptions{AddSpecial: true, ParseSpecial: true})
		if err != nil {
			return "tokenize image", err
		}
		defer chunks.Close()
		if _, _, err := p.Eval(ctx, x, chunks, mtmd.EvalOptions{Logits: true}); err != nil {
			return "encode image", err
		}
	}
	if src, ok := m.ChatTemplate(); ok {
		stage("chat template")
		t, err := template.Compile(src)
		if err != nil {
			return "chat template", err
		}
		msgs := []template.Message{template.User(template.Image(), template.Text("What is in this picture?"))}
		if _, err := t.Prompt(msgs, template.Options{AddGenerationPrompt: true, Marker: marker}); err != nil {
			return "chat template", err
		}
	}
	return "", nil
}

// stageMark starts the stdout lines that say what the child does next.
const stageMark = "VLM_ISOLATE_STAGE "

// stage tells the parent what the child does next, so that a crash can
// say where it happened.
func stage(name string) { fmt.Fprintf(os.Stdout, "\n%s%s\n", stageMark, name) }

// lastStage is the last stage the child announced.
func lastStage(out string) string {
	i := strings.LastIndex(out, stageMark)
	if i < 0 {
		return ""
	}
	rest := out[i+len(stageMark):]
	if j := strings.IndexByte(rest, '\n'); j >= 0 {
		rest = rest[:j]
	}
	return rest
}

// testPicture is a small colourful picture for the trial.
func testPicture() image.Image {
	img := image.NewNRGBA(image.Rect(0, 0, 48, 40))
	for y := range 40 {
		for x := range 48 {
			img.SetNRGBA(x, y, color.NRGBA{uint8(x * 5), uint8(y * 6), uint8((x + y) * 3), 255})
		}
	}
	return img
}

// Check tries the model (and the projector, if projectorPath is not empty)
// in a child process and reports how that went: nil when the child
// loaded, decoded, encoded and rendered without trouble.
func Check(ctx context.Context, modelPath, projectorPath string, opts Options) error {
	if !enabled.Load() {
		return ErrNotEnabled
	}
	exe, err := os.Executable()
	if err != nil {
		return fmt.Errorf("isolate: finding the program to re-execute: %w", err)
	}
	timeout := opts.Timeout
	if timeout <= 0 {
		timeout = 2 * time.Minute
	}
	args, _ := json.Marshal(childArgs{Model: modelPath, Projector: projectorPath, GPULayers: opts.GPULayers, NoGPU: opts.NoGPU, Tokens: opts.Tokens})
	cctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	cmd := exec.CommandContext(cctx, exe)
	// GGML_NO_BACKTRACE: on an abort ggml would attach gdb, where it is
	// installed, to print a backtrace (a second or more); the error carries
	// the assert's own line.
	cmd.Env = append(os.Environ(), envChild+"=1", envArgs+"="+string(args), "GGML_NO_BACKTRACE=1")
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &limitedTail{max: 64 << 10, buf: &stderr}
	err = cmd.Run()
	crash, log := splitCrash(stderr.String())
	tail := lastLines(log, 8)
	if cctx.Err() != nil && ctx.Err() == nil {
		return fmt.Errorf("%s: no answer within %v%s: %w", modelPath, timeout, tail, ErrTimeout)
	}
	if ctx.Err() != nil {
		return fmt.Errorf("isolate: %w", ctx.Err())
	}
	var res childResult
	lines := strings.Split(strings.TrimSpace(stdout.String()), "\n")
	_ = json.Unmarshal([]byte(lines[len(lines)-1]), &res)
	var ee *exec.ExitError
	switch {
	case err == nil && res.OK:
		return nil
	case errors.As(err, &ee) && ee.ExitCode() == 3 && res.Error != "":
		return fmt.Errorf("%s: %s: %s: %w", fileNames(modelPath, projectorPath), res.Stage, res.Error, ErrFailed)
	case errors.As(err, &ee):
		how := ee.String()
		if st, ok := ee.Sys().(syscall.WaitStatus); ok && st.Signaled() {
			how = "killed by " + st.Signal().String()
		}
		if crash != "" {
			how += " (" + crash + ")"
		}
		if st := lastStage(stdout.String()); st != "" {
			how += " during " + st
		}
		return fmt.Errorf("%s: the trial process %s%s: %w", fileNames(modelPath, projectorPath), how, tail, ErrCrashed)
	case err != nil:
		return fmt.Errorf("isolate: running the trial: %w", err)
	}
	return fmt.Errorf("%s: the trial process ended without a result%s: %w", fileNames(modelPath, projectorPath), tail, ErrCrashed)
}

func fileNames(model, proj string) string {
	if proj == "" {
		return model
	}
	return model + " with " + proj
}

// splitCrash separates the Go runtime's crash report (a signal such as
// "SIGABRT: abort" that llama.cpp's abort() raised, "fatal error: ...",
// "panic: ...", then goroutine dumps and registers) from the log lines
// before it; crash is the report's first line.
func splitCrash(s string) (crash, log string) {
	lines := strings.Split(s, "\n")
	for i, l := range lines {
		if strings.HasPrefix(l, "SIG") || strings.HasPrefix(l, "fatal error:") || strings.HasPrefix(l, "panic:") {
			return strings.TrimSpace(l), strings.Join(lines[:i], "\n")
		}
	}
	return "", s
}

// lastLines returns the last n non-empty lines of s, as "; last log lines: ...".
func lastLines(s string, n int) string {
	var keep, errs []string
	for _, l := range strings.Split(s, "\n") {
		if l = strings.TrimSpace(l); l != "" {
			keep = append(keep, l)
			low := strings.ToLower(l)
			if strings.Contains(low, "error") || strings.Contains(l, "GGML_ASSERT") || strings.Contains(low, "abort") {
				errs = append(errs, l)
			}
		}
	}
	// Error lines first (llama.cpp's and ggml's; a backtrace tool's
	// output is noise), else whatever came last.
	if len(errs) > 0 {
		keep = errs
	}
	if len(keep) == 0 {
		return ""
	}
	if len(keep) > n {
		keep = keep[len(keep)-n:]
	}
	return "; last log lines: " + strings.Join(keep, " | ")
}

// limitedTail keeps the last max bytes written.
type limitedTail struct {
	max int
	buf *bytes.Buffer
}

func (l *limitedTail) Write(p []byte) (int, error) {
	l.buf.Write(p)
	if over := l.buf.Len() - l.max; over > 0 {
		rest := append([]byte(nil), l.buf.Bytes()[over:]...)
		l.buf.Reset()
		l.buf.Write(rest)
	}
	return len(p), nil
}
