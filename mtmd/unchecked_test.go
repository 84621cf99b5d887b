//go:build vlmtest

package mtmd_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/vlm-go/vlm"
)

// The evidence behind vlm's refusal rules: a file a rule refuses is run
// through the pinned llama.cpp and mtmd WITHOUT vlm's checks — the root
// package's binding called directly, which validates nothing — in a child
// process (this test binary, re-executed to run TestUncheckedChild). The
// child loads the model, creates a context, and then either decodes a
// prompt (text only) or loads the projector, encodes an image and
// evaluates it with mtmd's own helper; it reports what it got. The parent
// classifies the outcome: a crash (the child died by a signal, or the Go
// runtime reported one that llama.cpp raised: SIGABRT of a GGML_ASSERT,
// SIGSEGV of a null tensor), a hang, a clean error, non-finite output, or
// finite output.

const (
	envUnchecked  = "VLM_TEST_UNCHECKED"
	uncheckedMark = "VLM_UNCHECKED_RESULT "
	stageMarkU    = "VLM_UNCHECKED_STAGE "
)

// uncheckedArgs is what the child runs.
type uncheckedArgs struct {
	Model     string `json:"model"`
	Projector string `json:"projector,omitempty"` // "": decode a text prompt only
	Prompt    string `json:"prompt,omitempty"`    // the text prompt; "" is a plain English question
	ImageW    int    `json:"image_w,omitempty"`
	ImageH    int    `json:"image_h,omitempty"`
}

// uncheckedResult is what the child reports on its last stdout line.
type uncheckedResult struct {
	Stage           string  `json:"stage"` // last stage started
	Error           string  `json:"error,omitempty"`
	EmbdN           int     `json:"embd_n"`
	EmbdNonFinite   int     `json:"embd_nonfinite"`
	EmbdSum         float64 `json:"embd_sum"`
	LogitsN         int     `json:"logits_n"`
	LogitsNonFinite int     `json:"logits_nonfinite"`
}

// uncheckedOutcome is what became of the child.
type uncheckedOutcome struct {
	uncheckedResult
	Crashed  bool   // died by a signal or with the Go runtime's crash report
	Crash    string // how: the signal or the report's first line
	TimedOut bool
	Log      string // GGML_ASSERT/error lines of the child's stderr
}

func (o uncheckedOutcome) String() string {
	switch {
	case o.TimedOut:
		return fmt.Sprintf("hung during %q", o.Stage)
	case o.Crashed:
		return fmt.Sprintf("crashed during %q: %s%s", o.Stage, o.Crash, o.Log)
	case o.Error != "":
		return fmt.Sprintf("failed cleanly during %q: %s", o.Stage, o.Error)
	}
	return fmt.Sprintf("ran: %d embedding values (%d non-finite, sum %.6g), %d logits (%d non-finite)",
		o.EmbdN, o.EmbdNonFinite, o.EmbdSum, o.LogitsN, o.LogitsNonFinite)
}

// nonFinite reports whether the run produced NaN or infinite output.
func (o uncheckedOutcome) nonFinite() bool { return o.EmbdNonFinite > 0 || o.LogitsNonFinite > 0 }

// ran reports whether the child finished without crash, hang or error.
func (o uncheckedOutcome) ran() bool { return !o.Crashed && !o.TimedOut && o.Error == "" }

// runUnchecked runs a in a child process without vlm's checks.
func runUnchecked(t *testing.T, a uncheckedArgs) uncheckedOutcome {
	t.Helper()
	if a.ImageW == 0 {
		a.ImageW, a.ImageH = 64, 48
	}
	raw, err := json.Marshal(a)
	require.NoError(t, err)
	// a good tiny pair takes about a second; a hang is a hang
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, os.Args[0], "-test.run=^TestUncheckedChild$", "-test.count=1")
	// GGML_NO_BACKTRACE: ggml's abort would otherwise attach gdb, where it
	// is installed, to print a backtrace (about a second per crash).
	cmd.Env = append(os.Environ(), envUnchecked+"="+string(raw), "GOTRACEBACK=single", "GGML_NO_BACKTRACE=1")
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err = cmd.Run()
	var o uncheckedOutcome
	for _, l := range strings.Split(stdout.String(), "\n") {
		if rest, ok := strings.CutPrefix(l, uncheckedMark); ok {
			require.NoError(t, json.Unmarshal([]byte(rest), &o.uncheckedResult))
		}
	}
	if o.Stage == "" {
		if i := strings.LastIndex(stderr.String(), stageMarkU); i >= 0 {
			o.Stage, _, _ = strings.Cut(stderr.String()[i+len(stageMarkU):], "\n")
		}
	}
	for _, l := range strings.Split(stderr.String(), "\n") {
		if strings.Contains(l, "GGML_ASSERT") || strings.Contains(l, "GGML_ABORT") || strings.Contains(l, "error") {
			if len(o.Log) < 600 {
				o.Log += " | " + strings.TrimSpace(l)
			}
		}
		if o.Crash == "" && (strings.HasPrefix(l, "SIG") || strings.HasPrefix(l, "fatal error:")) {
			o.Crash = strings.TrimSpace(l)
		}
	}
	var ee *exec.ExitError
	switch {
	case ctx.Err() != nil:
		o.TimedOut = true
	case errors.As(err, &ee):
		if st, ok := ee.Sys().(syscall.WaitStatus); ok && st.Signaled() {
			o.Crashed, o.Crash = true, "killed by "+st.Signal().String()
		} else if o.Crash != "" {
			o.Crashed = true
		} else if o.Error == "" {
			o.Error = fmt.Sprintf("child exited with %v without a result", err)
		}
	case err != nil:
		t.Fatalf("running the child: %v", err)
	}
	if !o.TimedOut && !o.Crashed && o.Stage == "" && o.Error == "" {
		t.Fatalf("the child reported nothing: %s", lastBytes(stderr.String(), 2000))
	}
	return o
}

func lastBytes(s string, n int) string {
	if len(s) > n {
		return s[len(s)-n:]
	}
	return s
}

// TestUncheckedChild is the child of runUnchecked; it skips unless started
// by it.
func TestUncheckedChild(t *testing.T) {
	raw := os.Getenv(envUnchecked)
	if raw == "" {
		t.Skip("runs only as the child of runUnchecked")
	}
	var a uncheckedArgs
	if err := json.Unmarshal([]byte(raw), &a); err != nil {
		t.Fatal(err)
	}
	res := uncheckedTrial(a)
	out, _ := json.Marshal(res)
	fmt.Fprintf(os.Stdout, "\n%s%s\n", uncheckedMark, out)
}

// uncheckedTrial loads and runs the files through the binding alone.
func uncheckedTrial(a uncheckedArgs) (res uncheckedResult) {
	stage := func(s string) {
		res.Stage = s
		fmt.Fprintf(os.Stderr, "\n%s%s\n", stageMarkU, s)
	}
	fail := func(err error) uncheckedResult {
		res.Error = err.Error()
		return res
	}
	count := func(vals []float32) (n, bad int, sum float64) {
		for _, v := range vals {
			if math.IsNaN(float64(v)) || math.IsInf(float64(v), 0) {
				bad++
				continue
			}
			sum += float64(v)
		}
		return len(vals), bad, sum
	}
	stage("load model")
	m, err := vlm.LoadModel(a.Model, vlm.ModelParams{})
	if err != nil {
		return fail(err)
	}
	defer m.Free()
	stage("create context")
	x, err := vlm.NewContext(m, vlm.ContextParams{NCtx: 512, NBatch: 512, NUbatch: 512, Threads: 1, ThreadsBatch: 1})
	if err != nil {
		return fail(err)
	}
	defer x.Free()
	if a.Projector == "" {
		stage("tokenize")
		prompt := a.Prompt
		if prompt == "" {
			prompt = "Hello, what is in this picture?"
		}
		toks, err := m.Tokenize(prompt, true, false)
		if err != nil {
			return fail(err)
		}
		stage("decode")
		b, err := vlm.NewBatch(len(toks), 0, 1, 1)
		if err != nil {
			return fail(err)
		}
		defer b.Free()
		for i, tok := range toks {
			if err := b.Add(tok, int32(i), i == len(toks)-1, 0); err != nil {
				return fail(err)
			}
		}
		if err := x.Decode(b); err != nil {
			return fail(err)
		}
		logits, err := x.Logits(-1)
		if err != nil {
			return fail(err)
		}
		res.LogitsN, res.LogitsNonFinite, _ = count(logits)
		stage("done")
		return res
	}
	stage("load projector")
	p, err := vlm.LoadProjector(a.Projector, m, vlm.ProjectorParams{Threads: 1})
	if err != nil {
		return fail(err)
	}
	defer p.Free()
	stage("tokenize image")
	rgb := make([]byte, a.ImageW*a.ImageH*3)
	for i := range rgb {
		rgb[i] = byte(i*7 + i/(3*a.ImageW)*13)
	}
	bm, err := vlm.NewBitmap(a.ImageW, a.ImageH, rgb, "")
	if err != nil {
		return fail(err)
	}
	defer bm.Free()
	chunks, err := p.Tokenize("What is in "+vlm.MediaMarker()+"?", true, true, []*vlm.Bitmap{bm})
	if err != nil {
		return fail(err)
	}
	defer chunks.Free()
	stage("encode image")
	for i := range chunks.Len() {
		info, err := chunks.Chunk(i)
		if err != nil {
			return fail(err)
		}
		if info.Type == vlm.ChunkText {
			continue
		}
		embd, err := p.Encode(chunks, i)
		if err != nil {
			return fail(err)
		}
		n, bad, sum := count(embd)
		res.EmbdN, res.EmbdNonFinite, res.EmbdSum = res.EmbdN+n, res.EmbdNonFinite+bad, res.EmbdSum+sum
	}
	stage("evaluate chunks")
	_, logits, err := p.HelperEvalChunks(x, chunks, 0, 0, 512)
	if err != nil {
		return fail(err)
	}
	res.LogitsN, res.LogitsNonFinite, _ = count(logits)
	stage("done")
	return res
}
