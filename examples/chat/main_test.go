package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"image/png"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/vlm-go/vlm/demo"
	"github.com/vlm-go/vlm/gguf"
	"github.com/vlm-go/vlm/internal/testmodel"
)

var statsLine = regexp.MustCompile(`stats: prompt (\d+) tokens \((\d+) image, (\d+) from the KV cache, (\d+) evaluated\), image chunks (\d+) encoded \d+ cached, (\d+) generated`)

type turnStats struct{ prompt, images, cached, evaluated, encoded, generated int }

func parseStats(t *testing.T, stderr string) []turnStats {
	var out []turnStats
	for _, m := range statsLine.FindAllStringSubmatch(stderr, -1) {
		var v [6]int
		for i := range v {
			n, err := strconv.Atoi(m[i+1])
			require.NoError(t, err)
			v[i] = n
		}
		out = append(out, turnStats{v[0], v[1], v[2], v[3], v[4], v[5]})
	}
	return out
}

// TestInteractiveTwoTurns drives the chat for two turns, the second adding
// an image with /image, and checks that the second turn evaluated only its
// new tokens.
func TestInteractiveTwoTurns(t *testing.T) {
	mp, pp := testmodel.TinyPair(t, testmodel.ProjectorIdefics3, gguf.TypeF16)
	imgPath := filepath.Join(t.TempDir(), "pic.png")
	var buf bytes.Buffer
	require.NoError(t, png.Encode(&buf, demo.Picture()))
	require.NoError(t, os.WriteFile(imgPath, buf.Bytes(), 0o644))

	stdin := strings.NewReader("Hello, who are you?\n/image " + imgPath + "\nWhat is in this picture?\n/quit\n")
	var stdout, stderr bytes.Buffer
	err := run(context.Background(), []string{"-model", mp, "-mmproj", pp, "-n", "8", "-threads", "2", "-ctx", "2048"}, stdin, &stdout, &stderr, nil)
	require.NoError(t, err, stderr.String())

	assert.Contains(t, stderr.String(), "will go with your next message")
	answers := strings.Split(strings.TrimRight(stdout.String(), "\n"), "\n")
	assert.GreaterOrEqual(t, len(answers), 2, "two answers in %q", stdout.String())
	st := parseStats(t, stderr.String())
	require.Len(t, st, 2, stderr.String())
	first, second := st[0], st[1]
	assert.Zero(t, first.images)
	assert.Zero(t, first.cached)
	assert.Equal(t, first.prompt, first.evaluated)
	assert.Positive(t, second.images, "the second turn has the image")
	assert.Positive(t, second.encoded)
	// Only the new tokens were evaluated: the first turn's prompt came from the cache.
	assert.GreaterOrEqual(t, second.cached, first.prompt-1)
	assert.Equal(t, second.prompt-second.cached, second.evaluated)
	assert.Less(t, second.evaluated, second.prompt)
}

func TestOneShotWithDemoImage(t *testing.T) {
	mp, pp := testmodel.TinyPair(t, testmodel.ProjectorGemma3, gguf.TypeF16)
	var stdout, stderr bytes.Buffer
	err := run(context.Background(), []string{"-model", mp, "-mmproj", pp, "-prompt", "Describe.", "-n", "4", "-temp", "0.8", "-seed", "3", "-threads", "2", "-quiet"},
		strings.NewReader(""), &stdout, &stderr, nil)
	require.NoError(t, err, stderr.String())
	assert.NotContains(t, stderr.String(), "stats:")
	assert.True(t, strings.HasSuffix(stdout.String(), "\n"))
}

func TestFlagErrors(t *testing.T) {
	for _, c := range []struct {
		args []string
		msg  string
	}{
		{[]string{"-model", "x.gguf"}, "-model and -mmproj go together"},
		{[]string{"-n", "0"}, "-n 0: must be > 0"},
		{[]string{"-n", "-5"}, "-n -5: must be > 0"},
		{[]string{"-temp", "NaN"}, "-temp NaN: must be a number ≥ 0"},
		{[]string{"-temp", "-1"}, "-temp -1: must be a number ≥ 0"},
		{[]string{"-ngl", "-2"}, "-ngl -2: must be -1 (all layers), 0 (CPU only) or a layer count"},
		{[]string{"-ctx", "100"}, "-ctx 100: must be at least 256 tokens"},
		{[]string{"-threads", "-1"}, "-threads -1: must be ≥ 0"},
		{[]string{"extra"}, "unexpected arguments"},
		{[]string{"-nosuchflag"}, "flag provided but not defined: -nosuchflag"},
	} {
		var stdout, stderr bytes.Buffer
		err := run(context.Background(), c.args, strings.NewReader(""), &stdout, &stderr, nil)
		assert.ErrorContains(t, err, c.msg, "%v", c.args)
		assert.Equal(t, 1, exitCode(err, io.Discard), "%v", c.args)
		assert.Empty(t, stdout.String(), "nothing loaded for %v", c.args)
	}
	var stdout, stderr bytes.Buffer
	err := run(context.Background(), []string{"-model", "/nonexistent.gguf", "-mmproj", "/nonexistent.gguf", "-quiet"}, strings.NewReader(""), &stdout, &stderr, nil)
	assert.ErrorContains(t, err, "not found")
	assert.Equal(t, 0, exitCode(flag.ErrHelp, io.Discard))
	assert.Equal(t, 0, exitCode(nil, io.Discard))
	assert.Equal(t, 130, exitCode(errInterrupted, io.Discard))
}

// firstWrite is a writer that closes started at its first write.
type firstWrite struct {
	mu      sync.Mutex
	buf     bytes.Buffer
	started chan struct{}
	once    sync.Once
}

func newFirstWrite() *firstWrite { return &firstWrite{started: make(chan struct{})} }

func (w *firstWrite) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if len(bytes.TrimSpace(p)) > 0 {
		w.once.Do(func() { close(w.started) })
	}
	return w.buf.Write(p)
}

func (w *firstWrite) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.buf.String()
}

// Ctrl-C during an answer stops it and returns to the prompt; the next
// answer works; Ctrl-C at the idle prompt quits with status 130.
func TestCtrlCStopsAnswerThenQuits(t *testing.T) {
	mp, pp := testmodel.TinyPair(t, testmodel.ProjectorMLP, gguf.TypeF16)
	stdinR, stdinW := io.Pipe()
	defer stdinW.Close()
	stdout := newFirstWrite()
	var stderr syncBuffer
	interrupts := make(chan os.Signal, 1)
	done := make(chan error, 1)
	go func() {
		done <- run(context.Background(), []string{"-model", mp, "-mmproj", pp, "-n", "100000", "-ignore-eos", "-threads", "1", "-ctx", "100000"},
			stdinR, stdout, &stderr, interrupts)
	}()
	_, err := io.WriteString(stdinW, "Tell me a very long story.\n")
	require.NoError(t, err)
	<-stdout.started // the answer is streaming (it would run for minutes)
	interrupts <- os.Interrupt
	waitFor(t, func() bool { return strings.Contains(stderr.String(), "answer stopped") }, &stderr)

	// Back at the prompt: the chat still answers.
	before := len(stdout.String())
	_, err = io.WriteString(stdinW, "/reset\n")
	require.NoError(t, err)
	waitFor(t, func() bool { return strings.Contains(stderr.String(), "conversation cleared") }, &stderr)
	assert.Equal(t, before, len(stdout.String()), "nothing more was generated after the interrupt")

	interrupts <- os.Interrupt // at the idle prompt: quit
	select {
	case err := <-done:
		assert.ErrorIs(t, err, errInterrupted)
		assert.Equal(t, 130, exitCode(err, io.Discard))
	case <-time.After(time.Minute):
		t.Fatalf("Ctrl-C at the prompt did not quit; stderr:\n%s", stderr.String())
	}
}

// waitFor polls cond until it holds (a minute at most: a loaded machine is slow).
func waitFor(t *testing.T, cond func() bool, stderr fmt.Stringer) {
	t.Helper()
	for deadline := time.Now().Add(time.Minute); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		if cond() {
			return
		}
	}
	t.Fatalf("condition not reached; stderr:\n%s", stderr.String())
}

type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// TestMain runs the chat's main instead of the tests when asked to, so that
// TestExitStatus can start the real program and signal it.
func TestMain(m *testing.M) {
	if os.Getenv("VLM_CHAT_RUN_MAIN") == "1" {
		os.Args = append([]string{"chat"}, strings.Fields(os.Getenv("VLM_CHAT_ARGS"))...)
		main()
		return
	}
	os.Exit(m.Run())
}

// The program's exit status: 0 for a normal end, 1 for an error, 130 when a
// real SIGINT stops a one-shot answer.
func TestExitStatus(t *testing.T) {
	mp, pp := testmodel.TinyPair(t, testmodel.ProjectorMLP, gguf.TypeF16)
	start := func(args string) (*exec.Cmd, *firstWrite, *syncBuffer) {
		cmd := exec.Command(os.Args[0], "-test.run=^$")
		cmd.Env = append(os.Environ(), "VLM_CHAT_RUN_MAIN=1", "VLM_CHAT_ARGS="+args)
		out, errOut := newFirstWrite(), &syncBuffer{}
		cmd.Stdout, cmd.Stderr = out, errOut
		require.NoError(t, cmd.Start())
		return cmd, out, errOut
	}
	status := func(cmd *exec.Cmd) int {
		err := cmd.Wait()
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			return ee.ExitCode()
		}
		require.NoError(t, err)
		return 0
	}
	base := fmt.Sprintf("-model %s -mmproj %s -threads 1 -quiet", mp, pp)

	cmd, _, errOut := start(base + " -prompt Hello -n 2")
	assert.Equal(t, 0, status(cmd), errOut.String())

	cmd, _, errOut = start(base + " -prompt Hello -n -5")
	assert.Equal(t, 1, status(cmd))
	assert.Contains(t, errOut.String(), "chat: -n -5: must be > 0")
	assert.NotContains(t, errOut.String(), "exit status")

	cmd, out, errOut := start(base + " -prompt Tell_me_everything -n 100000 -ignore-eos -ctx 100000")
	select {
	case <-out.started:
	case <-time.After(2 * time.Minute):
		cmd.Process.Kill()
		t.Fatalf("no answer; stderr:\n%s", errOut.String())
	}
	require.NoError(t, cmd.Process.Signal(os.Interrupt))
	assert.Equal(t, 130, status(cmd), errOut.String())
}

// With no -model the chat uses the demo pair and the demo picture (the
// README's main command).
func TestDemoModelAndPicture(t *testing.T) {
	var stdout, stderr bytes.Buffer
	err := run(context.Background(), []string{"-prompt", "What is in this picture?", "-n", "4", "-threads", "1"},
		strings.NewReader(""), &stdout, &stderr, nil)
	require.NoError(t, err, stderr.String())
	assert.Contains(t, stderr.String(), "weights are RANDOM")
	assert.Contains(t, stderr.String(), "demo image (image 1)")
	st := parseStats(t, stderr.String())
	require.Len(t, st, 1, stderr.String())
	assert.Positive(t, st[0].images, "the demo picture is in the prompt")
	assert.Positive(t, st[0].encoded)
}
