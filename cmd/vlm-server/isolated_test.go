package main

import (
	"bufio"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// children returns the process IDs whose parent is pid.
func children(t *testing.T, pid int) []int {
	t.Helper()
	stats, err := filepath.Glob("/proc/[0-9]*/stat")
	require.NoError(t, err)
	var out []int
	for _, f := range stats {
		b, err := os.ReadFile(f)
		if err != nil {
			continue // gone
		}
		// pid (comm) state ppid ...: comm may hold spaces, not ')'.
		s := string(b)
		fields := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
		if len(fields) > 1 && fields[1] == strconv.Itoa(pid) {
			id, _ := strconv.Atoi(filepath.Base(filepath.Dir(f)))
			out = append(out, id)
		}
	}
	return out
}

// TestIsolatedServerSurvivesKilledChild is a black-box test: vlm-server
// -isolated in its own process; with a stream in flight, every child of
// the server is killed with SIGKILL. The stream ends with an error event,
// the server process goes on (same process, still serving), readiness
// comes back, and the next request gets 200.
func TestIsolatedServerSurvivesKilledChild(t *testing.T) {
	exe, err := os.Executable()
	require.NoError(t, err)
	args, _ := json.Marshal([]string{"-isolated", "-addr", "127.0.0.1:0", "-threads", "1", "-parallel", "2"})
	srv := exec.Command(exe, "-test.run=^$")
	srv.Env = append(os.Environ(), envServe+"="+string(args))
	stderr, err := srv.StderrPipe()
	require.NoError(t, err)
	require.NoError(t, srv.Start())
	defer func() {
		_ = srv.Process.Kill()
		_ = srv.Wait()
	}()
	var logs syncBuffer
	addrs := make(chan string, 1)
	go func() {
		re := regexp.MustCompile(`serving the OpenAI API.* addr=(\S+)`)
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			logs.Write(append(sc.Bytes(), '\n'))
			if m := re.FindStringSubmatch(sc.Text()); m != nil {
				addrs <- m[1]
			}
		}
	}()
	var base string
	select {
	case a := <-addrs:
		base = "http://" + a
	case <-time.After(60 * time.Second):
		t.Fatalf("not serving after 60 s:\n%s", logs.String())
	}
	get := func(path string) int {
		resp, err := http.Get(base + path)
		if err != nil {
			return 0
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	require.Equal(t, 200, get("/readyz"))

	resp, err := http.Post(base+"/v1/chat/completions", "application/json",
		strings.NewReader(`{"messages":[{"role":"user","content":"Tell me a long story"}],"max_tokens":4000,"temperature":0,"stream":true}`))
	require.NoError(t, err)
	defer resp.Body.Close()
	require.Equal(t, 200, resp.StatusCode)
	sc := bufio.NewScanner(resp.Body)
	// Read up to the first token's event: the answer is being generated.
	for sc.Scan() {
		if l := sc.Text(); strings.Contains(l, `"content":"`) && !strings.Contains(l, `"content":""`) {
			break
		}
	}
	kids := children(t, srv.Process.Pid)
	require.NotEmpty(t, kids, "the model's process")
	for _, k := range kids {
		require.NoError(t, syscall.Kill(k, syscall.SIGKILL))
	}
	var rest []string
	for sc.Scan() {
		if sc.Text() != "" {
			rest = append(rest, sc.Text())
		}
	}
	require.NotEmpty(t, rest)
	last := rest[len(rest)-1]
	t.Log(last)
	assert.Contains(t, last, `"error"`, "the stream ends with an error event")
	assert.Contains(t, last, "model_crashed")
	assert.NotContains(t, strings.Join(rest, "\n"), "[DONE]")

	// The server is the same process, alive and serving.
	require.NoError(t, syscall.Kill(srv.Process.Pid, 0))
	assert.Nil(t, srv.ProcessState)
	assert.Equal(t, 200, get("/healthz"))
	deadline := time.Now().Add(60 * time.Second)
	for get("/readyz") != 200 && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	require.Equal(t, 200, get("/readyz"), logs.String())
	resp2, err := http.Post(base+"/v1/chat/completions", "application/json",
		strings.NewReader(`{"messages":[{"role":"user","content":"Hello"}],"max_tokens":5,"temperature":0}`))
	require.NoError(t, err)
	body, _ := io.ReadAll(resp2.Body)
	resp2.Body.Close()
	require.Equal(t, 200, resp2.StatusCode, string(body))
	assert.NotEqual(t, kids, children(t, srv.Process.Pid), "a new model process")
	assert.Contains(t, logs.String(), "killed by SIGKILL")
}
