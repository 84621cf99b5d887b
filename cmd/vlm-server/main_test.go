package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/vlm-go/vlm/isolate"
)

// syncBuffer is a bytes.Buffer safe for the server's log goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}
func (s *syncBuffer) String() string { s.mu.Lock(); defer s.mu.Unlock(); return s.b.String() }

// TestServeDemoAndStopOnSIGTERM: with no model the server serves the demo
// pair (and says so), answers a request, and on SIGTERM with a stream in
// flight finishes it and exits 0.
func TestServeDemoAndStopOnSIGTERM(t *testing.T) {
	var logs syncBuffer
	ready := make(chan string, 1)
	code := make(chan int, 1)
	go func() {
		code <- run(context.Background(), []string{"-addr", "127.0.0.1:0", "-threads", "1", "-parallel", "2"}, &logs, ready)
	}()
	var addr string
	select {
	case addr = <-ready:
	case c := <-code:
		t.Fatalf("exited %d before serving:\n%s", c, logs.String())
	case <-time.After(60 * time.Second):
		t.Fatalf("not serving after 60 s:\n%s", logs.String())
	}
	assert.Contains(t, logs.String(), "demo pair")

	resp, err := http.Post("http://"+addr+"/v1/chat/completions", "application/json",
		strings.NewReader(`{"messages":[{"role":"user","content":"Hello"}],"max_tokens":5,"temperature":0}`))
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, 200, resp.StatusCode)

	resp, err = http.Post("http://"+addr+"/v1/chat/completions", "application/json",
		strings.NewReader(`{"messages":[{"role":"user","content":"Tell me more"}],"max_tokens":300,"stream":true}`))
	require.NoError(t, err)
	defer resp.Body.Close()
	require.Equal(t, 200, resp.StatusCode)
	sc := bufio.NewScanner(resp.Body)
	require.True(t, sc.Scan(), "the stream's first event")
	require.NoError(t, syscall.Kill(syscall.Getpid(), syscall.SIGTERM))
	done := false
	for sc.Scan() {
		if sc.Text() == "data: [DONE]" {
			done = true
		}
	}
	assert.True(t, done, "the stream in flight finished")
	select {
	case c := <-code:
		assert.Equal(t, 0, c, logs.String())
	case <-time.After(30 * time.Second):
		t.Fatalf("still running 30 s after SIGTERM:\n%s", logs.String())
	}
	assert.Contains(t, logs.String(), "stopped")
}

func TestFlagErrors(t *testing.T) {
	var logs syncBuffer
	assert.Equal(t, 2, run(context.Background(), []string{"-model", "x.gguf"}, &logs, nil))
	assert.Contains(t, logs.String(), "both -model and -mmproj")
	assert.Equal(t, 2, run(context.Background(), []string{"stray"}, &logs, nil))
	assert.Equal(t, 2, run(context.Background(), []string{"-body-timeout", "0s"}, &logs, nil))
	assert.Equal(t, 2, run(context.Background(), []string{"-max-connections", "-1"}, &logs, nil))
	assert.Contains(t, logs.String(), "-body-timeout")
	assert.Equal(t, 1, run(context.Background(), []string{"-model", "/nonexistent.gguf", "-mmproj", "/nonexistent-mmproj.gguf"}, &logs, nil))
	assert.Contains(t, logs.String(), "loading the model")
}

// The black-box test runs this binary as the server: with envServe set,
// TestMain runs the program with the JSON arguments in it.
const envServe = "VLM_SERVER_TEST_ARGS"

func TestMain(m *testing.M) {
	isolate.Main()
	if a := os.Getenv(envServe); a != "" {
		var args []string
		if err := json.Unmarshal([]byte(a), &args); err != nil {
			panic(err)
		}
		os.Exit(run(context.Background(), args, os.Stderr, nil))
	}
	os.Exit(m.Run())
}

func TestIsolatedFlag(t *testing.T) {
	var logs syncBuffer
	bad := filepath.Join(t.TempDir(), "model.gguf")
	require.NoError(t, os.WriteFile(bad, []byte("<!DOCTYPE html><html>not a model</html>"), 0o644))
	assert.Equal(t, 1, run(context.Background(), []string{"-isolated", "-model", bad, "-mmproj", bad}, &logs, nil))
	assert.Contains(t, logs.String(), "failed its trial")
}
