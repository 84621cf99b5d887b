package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// oneShot is a client whose connections close after each request (none
// lingers to take a place of -max-connections).
var oneShot = &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}

// metricsOf scrapes the server's /metrics into name{labels} → value.
func metricsOf(t testing.TB, addr string) map[string]float64 {
	t.Helper()
	resp, err := oneShot.Get("http://" + addr + "/metrics")
	require.NoError(t, err)
	defer resp.Body.Close()
	out := map[string]float64{}
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, "#") || line == "" {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		v, err := strconv.ParseFloat(line[i+1:], 64)
		require.NoError(t, err, line)
		out[line[:i]] = v
	}
	return out
}

// closedWithin reads c until the server closes it and returns how long
// that took from start; it fails the test if the server keeps it open
// past limit.
func closedWithin(t testing.TB, c net.Conn, start time.Time, limit time.Duration) (string, time.Duration) {
	t.Helper()
	c.SetReadDeadline(start.Add(limit))
	data, err := io.ReadAll(c)
	elapsed := time.Since(start)
	require.NotErrorIs(t, err, os.ErrDeadlineExceeded, "still open after %v; read %q", limit, data)
	return string(data), elapsed
}

// TestHostileClients runs vlm-server as it ships (run, short deadlines)
// and tries it as an attacker would: trickling bodies (declared and
// chunked), slowloris headers, thousands of headers, 300 unknown paths
// and more connections than allowed.
func TestHostileClients(t *testing.T) {
	var logs syncBuffer
	ready := make(chan string, 1)
	code := make(chan int, 1)
	ctx, cancel := context.WithCancel(context.Background())
	go func() {
		code <- run(ctx, []string{"-addr", "127.0.0.1:0", "-threads", "1", "-parallel", "1", "-ctx", "512",
			"-api-key-env", "VLM_TEST_UNSET_KEY", "-read-header-timeout", "1s", "-body-timeout", "2s", "-idle-timeout", "3s",
			"-max-header-bytes", "8192", "-max-connections", "8"}, &logs, ready)
	}()
	defer func() {
		cancel()
		select {
		case c := <-code:
			assert.Equal(t, 0, c, logs.String())
		case <-time.After(30 * time.Second):
			t.Errorf("still running 30 s after cancel:\n%s", logs.String())
		}
	}()
	var addr string
	select {
	case addr = <-ready:
	case c := <-code:
		t.Fatalf("exited %d before serving:\n%s", c, logs.String())
	case <-time.After(60 * time.Second):
		t.Fatalf("not serving after 60 s:\n%s", logs.String())
	}
	dial := func(t *testing.T) net.Conn {
		c, err := net.Dial("tcp", addr)
		require.NoError(t, err)
		t.Cleanup(func() { c.Close() })
		return c
	}

	for _, chunked := range []bool{false, true} {
		t.Run(fmt.Sprintf("trickling body chunked=%v", chunked), func(t *testing.T) {
			before := metricsOf(t, addr)[`vlm_http_body_errors_total{reason="timeout"}`]
			c := dial(t)
			start := time.Now()
			head := "POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 1000000\r\n\r\n"
			if chunked {
				head = "POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"
			}
			_, err := io.WriteString(c, head)
			require.NoError(t, err)
			go func() {
				for {
					b := "{"
					if chunked {
						b = "1\r\n{\r\n"
					}
					if _, err := io.WriteString(c, b); err != nil {
						return
					}
					time.Sleep(time.Second)
				}
			}()
			resp, elapsed := closedWithin(t, c, start, 6*time.Second)
			assert.True(t, strings.HasPrefix(resp, "HTTP/1.1 408"), "%q", resp)
			assert.Less(t, elapsed, 3*time.Second, "cut off at the 2 s body deadline")
			assert.Greater(t, elapsed, 1500*time.Millisecond, "not before it")
			t.Logf("1 byte/s body cut off after %v", elapsed.Round(time.Millisecond))
			assert.Equal(t, before+1, metricsOf(t, addr)[`vlm_http_body_errors_total{reason="timeout"}`], "counted")
		})
	}

	t.Run("slowloris headers", func(t *testing.T) {
		c := dial(t)
		start := time.Now()
		go func() {
			if _, err := io.WriteString(c, "POST /v1/chat/completions HTTP/1.1\r\n"); err != nil {
				return
			}
			for i := 0; ; i++ {
				if _, err := fmt.Fprintf(c, "X-%d: y\r\n", i); err != nil {
					return
				}
				time.Sleep(300 * time.Millisecond)
			}
		}()
		_, elapsed := closedWithin(t, c, start, 5*time.Second)
		assert.Less(t, elapsed, 2*time.Second, "cut off at the 1 s header deadline")
		t.Logf("slow headers cut off after %v", elapsed.Round(time.Millisecond))
	})

	t.Run("many headers", func(t *testing.T) {
		c := dial(t)
		var b strings.Builder
		b.WriteString("GET /v1/models HTTP/1.1\r\nHost: x\r\n")
		for i := range 2000 {
			fmt.Fprintf(&b, "X-H-%d: v\r\n", i)
		}
		b.WriteString("\r\n")
		go io.WriteString(c, b.String())
		resp, _ := closedWithin(t, c, time.Now(), 5*time.Second)
		assert.True(t, strings.HasPrefix(resp, "HTTP/1.1 431"), "%.100q", resp)
	})

	t.Run("300 unknown paths add no series", func(t *testing.T) {
		before := metricsOf(t, addr)
		client := &http.Client{Transport: &http.Transport{}}
		for i := range 300 {
			resp, err := client.Get(fmt.Sprintf("http://%s/v1/probe-%d?x=%d", addr, i, i))
			require.NoError(t, err)
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
		}
		client.CloseIdleConnections()
		after := metricsOf(t, addr)
		assert.Equal(t, len(before), len(after), "series")
		for name := range after {
			_, ok := before[name]
			assert.True(t, ok, "new series %s", name)
		}
		key := `vlm_http_requests_total{path="other",status="404"}`
		assert.Equal(t, before[key]+300, after[key])
	})

	t.Run("max connections", func(t *testing.T) {
		require.Eventually(t, func() bool { return metricsOf(t, addr)["vlm_http_connections_open"] <= 1 }, 10*time.Second, 50*time.Millisecond)
		// Keep-alive connections (idle for less than -idle-timeout) take
		// every place; the next one reads a 503 and is closed.
		var held []net.Conn
		refused := false
		for range 10 {
			c := dial(t)
			_, err := io.WriteString(c, "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
			require.NoError(t, err)
			c.SetReadDeadline(time.Now().Add(2 * time.Second))
			resp, err := http.ReadResponse(bufio.NewReader(c), nil)
			require.NoError(t, err)
			resp.Body.Close()
			if resp.StatusCode == 503 {
				refused = true
				_, err := c.Read(make([]byte, 1))
				assert.ErrorIs(t, err, io.EOF, "closed after the 503")
				break
			}
			require.Equal(t, 200, resp.StatusCode)
			held = append(held, c)
		}
		assert.True(t, refused, "a connection beyond the limit is refused")
		assert.GreaterOrEqual(t, len(held), 7)
		assert.LessOrEqual(t, len(held), 8)
		for _, c := range held {
			c.Close()
		}
		// Once they are closed, connections are taken again.
		require.Eventually(t, func() bool {
			resp, err := oneShot.Get("http://" + addr + "/healthz")
			if err != nil {
				return false
			}
			resp.Body.Close()
			return resp.StatusCode == 200
		}, 5*time.Second, 50*time.Millisecond)
		assert.Positive(t, metricsOf(t, addr)["vlm_http_connections_refused_total"])
	})

	t.Run("still answers", func(t *testing.T) {
		resp, err := oneShot.Post("http://"+addr+"/v1/chat/completions", "application/json",
			strings.NewReader(`{"messages":[{"role":"user","content":"Hello"}],"max_tokens":3}`))
		require.NoError(t, err)
		defer resp.Body.Close()
		assert.Equal(t, 200, resp.StatusCode)
	})
}
