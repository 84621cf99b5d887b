package openai_test

import (
	"bufio"
	"context"
	"encoding/base64"
	"fmt"
	"io"
	"iter"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/vlm-go/vlm/llama"
	"github.com/vlm-go/vlm/openai"
	"github.com/vlm-go/vlm/pipeline"
	"github.com/vlm-go/vlm/sampler"
)

// seriesCount is the number of series in the handler's registry.
func seriesCount(t testing.TB, s *server) int {
	t.Helper()
	mfs, err := s.h.Registry().Gather()
	require.NoError(t, err)
	n := 0
	for _, mf := range mfs {
		n += len(mf.GetMetric())
	}
	return n
}

// TestMetricsLabelsBounded: 300 requests to distinct unknown paths, with
// and without the key, and odd methods add no series; they are counted
// under path "other".
func TestMetricsLabelsBounded(t *testing.T) {
	s := newServer(t, pipeline.Options{}, openai.Options{})
	before := seriesCount(t, s)
	for i := range 300 {
		path := fmt.Sprintf("/v1/probe-%d", i)
		if i%3 == 1 {
			path = fmt.Sprintf("/admin/%d/../x%d", i, i)
		}
		req, err := http.NewRequest("GET", s.srv.URL+path, nil)
		require.NoError(t, err)
		if i%2 == 0 {
			req.Header.Set("Authorization", "Bearer "+testKey)
		}
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
	}
	for _, m := range []string{"OPTIONS", "PUT", "DELETE", "PATCH", "BREW"} {
		req, _ := http.NewRequest(m, s.srv.URL+"/v1/chat/completions", nil)
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		resp.Body.Close()
		assert.Equal(t, 405, resp.StatusCode, m)
	}
	assert.Equal(t, before, seriesCount(t, s), "no series added")
	m := scrape(t, s)
	assert.Equal(t, 300.0, m[`vlm_http_requests_total{path="other",status="404"}`])
	assert.Equal(t, 5.0, m[`vlm_http_requests_total{path="/v1/chat/completions",status="405"}`])
}

// rawConn opens a TCP connection to the test server.
func rawConn(t testing.TB, s *server) net.Conn {
	t.Helper()
	c, err := net.Dial("tcp", strings.TrimPrefix(s.srv.URL, "http://"))
	require.NoError(t, err)
	t.Cleanup(func() { c.Close() })
	return c
}

// trickle sends one byte of body per interval until stop or a write fails.
func trickle(c net.Conn, interval time.Duration, chunked bool, stop <-chan struct{}) {
	for {
		select {
		case <-stop:
			return
		case <-time.After(interval):
		}
		b := "a"
		if chunked {
			b = "1\r\na\r\n"
		}
		if _, err := io.WriteString(c, b); err != nil {
			return
		}
	}
}

// TestTricklingBodyCutOff: a client that declares a large body (or sends
// it chunked) and then sends a byte every 200 ms gets a 408 and its
// connection closed within BodyTimeout; the metric counts the bodies cut
// off. Without the API key it gets its 401 and the connection is closed
// without waiting for the body.
func TestTricklingBodyCutOff(t *testing.T) {
	const timeout = time.Second
	s := newServer(t, pipeline.Options{}, openai.Options{BodyTimeout: timeout})
	for _, c := range []struct {
		name    string
		header  string
		chunked bool
		status  string
		counted bool
	}{
		{"content-length", "Content-Length: 1000000\r\nAuthorization: Bearer " + testKey + "\r\n", false, "408", true},
		{"chunked", "Transfer-Encoding: chunked\r\nAuthorization: Bearer " + testKey + "\r\n", true, "408", true},
		{"no key", "Content-Length: 100000\r\n", false, "401", false},
	} {
		t.Run(c.name, func(t *testing.T) {
			before := scrape(t, s)[`vlm_http_body_errors_total{reason="timeout"}`]
			conn := rawConn(t, s)
			start := time.Now()
			first := "{"
			if c.chunked {
				first = "1\r\n{\r\n"
			}
			_, err := io.WriteString(conn, "POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"+c.header+"\r\n"+first)
			require.NoError(t, err)
			stop := make(chan struct{})
			defer close(stop)
			go trickle(conn, 200*time.Millisecond, c.chunked, stop)
			conn.SetReadDeadline(time.Now().Add(5 * timeout))
			resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
			require.NoError(t, err)
			assert.Equal(t, c.status, strings.Fields(resp.Status)[0])
			io.Copy(io.Discard, resp.Body)
			// The server closes the connection: the next read ends.
			_, err = conn.Read(make([]byte, 1))
			elapsed := time.Since(start)
			assert.Error(t, err, "the connection is closed")
			assert.NotErrorIs(t, err, os.ErrDeadlineExceeded, "closed by the server, not by the test's deadline")
			assert.Less(t, elapsed, timeout+timeout/2, "cut off within the body deadline")
			t.Logf("%s: %s, closed after %v", c.name, resp.Status, elapsed.Round(time.Millisecond))
			if c.status == "401" {
				assert.Less(t, elapsed, 900*time.Millisecond, "refused without waiting for the body")
			}
			if c.counted {
				assert.Equal(t, before+1, scrape(t, s)[`vlm_http_body_errors_total{reason="timeout"}`])
			}
		})
	}
}

// holdSequence makes a request straight to the pipeline: once next has
// returned its first token, its sequence stays taken (the rest is not
// read, and a grammar keeps the model from ending early) until release.
func holdSequence(t testing.TB, p *pipeline.Pipeline) (next func() (llama.GeneratedToken, error, bool), release func()) {
	t.Helper()
	st := p.Stream(context.Background(), pipeline.Input{Text: "hold"}, pipeline.GenerateOptions{
		MaxTokens: 400, Sampler: sampler.Config{Grammar: `root ::= "` + strings.Repeat("ab ", 300) + `"`},
	})
	return iter.Pull2(st.Tokens())
}

// TestOverloadBeforePreparation: with every sequence and queue place
// taken, requests get 429 before their body is prepared: an image that
// would fail to decode and a schema that would fail to compile are not
// looked at (a 429, not a 400), the engine never sees them, and an
// "Expect: 100-continue" client is refused before it sends its body.
func TestOverloadBeforePreparation(t *testing.T) {
	s := newServer(t, pipeline.Options{Sequences: 1, MaxWaiting: 1}, openai.Options{MaxInFlight: -1})
	next1, release1 := holdSequence(t, s.p)
	_, err, ok := next1()
	require.True(t, ok)
	require.NoError(t, err)
	next2, release2 := holdSequence(t, s.p)
	waited := make(chan error, 1)
	go func() { _, err, _ := next2(); waited <- err }()
	require.Eventually(t, func() bool { return s.p.EngineStats().Waiting == 1 }, 10*time.Second, 5*time.Millisecond)
	require.True(t, s.p.Overloaded())

	badImage := `{"messages":[{"role":"user","content":[{"type":"image_url","image_url":{"url":"data:image/png;base64,@@@@"}}]}]}`
	badSchema := `{"messages":[{"role":"user","content":"a"}],"response_format":{"type":"json_schema","json_schema":{"name":"x","schema":{"type":"banana"}}}}`
	engineRefused := s.p.EngineStats().Overloaded
	for _, body := range []string{badImage, badSchema} {
		code, resp := s.post(t, body, testKey)
		assert.Equal(t, 429, code, resp)
		assert.Contains(t, resp, "overloaded")
	}
	// Expect: 100-continue: the 429 comes instead of "100 Continue".
	conn := rawConn(t, s)
	fmt.Fprintf(conn, "POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\nExpect: 100-continue\r\nContent-Length: %d\r\n\r\n", testKey, len(badImage))
	conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	require.NoError(t, err)
	assert.Equal(t, 429, resp.StatusCode)
	assert.Equal(t, "1", resp.Header.Get("Retry-After"))

	assert.Equal(t, engineRefused, s.p.EngineStats().Overloaded, "the engine never saw them")
	m := scrape(t, s)
	assert.Equal(t, 3.0, m["vlm_overloaded_total"]-float64(engineRefused))
	assert.Equal(t, 3.0, m[`vlm_http_requests_total{path="/v1/chat/completions",status="429"}`])

	release1()
	require.NoError(t, <-waited)
	release2()
	require.Eventually(t, func() bool { return s.p.EngineStats().Active == 0 }, 10*time.Second, 5*time.Millisecond)
	for _, body := range []string{badImage, badSchema} {
		code, resp := s.post(t, body, testKey)
		assert.Equal(t, 400, code, "with room, the same request is looked at: %s", resp)
	}
}

// TestInFlightBound: requests still being prepared (here: fetching a slow
// remote image) count against MaxInFlight, so a flood is refused before
// it decodes or fetches anything.
func TestInFlightBound(t *testing.T) {
	pic := pngBytes(t)
	var hits atomic.Int32
	gate := make(chan struct{})
	images := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		<-gate
		w.Write(pic)
	}))
	defer images.Close()
	defer func() {
		select {
		case <-gate:
		default:
			close(gate)
		}
	}()
	host := must(url.Parse(images.URL)).Hostname()
	s := newServer(t, pipeline.Options{Sequences: 1}, openai.Options{
		RemoteImages: true, AllowedHosts: []string{host}, AllowPrivateAddresses: true, MaxTokens: 4, MaxInFlight: 2,
	})
	slow := `{"max_tokens":2,"messages":[{"role":"user","content":[{"type":"image_url","image_url":{"url":"` + images.URL + `/cat.png"}},{"type":"text","text":"?"}]}]}`
	var wg sync.WaitGroup
	codes := make([]int, 2)
	for i := range 2 {
		wg.Go(func() {
			req, _ := http.NewRequest("POST", s.srv.URL+"/v1/chat/completions", strings.NewReader(slow))
			req.Header.Set("Authorization", "Bearer "+testKey)
			if resp, err := http.DefaultClient.Do(req); err == nil {
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				codes[i] = resp.StatusCode
			}
		})
	}
	require.Eventually(t, func() bool { return hits.Load() == 2 }, 10*time.Second, 5*time.Millisecond)
	assert.Zero(t, s.p.EngineStats().Waiting, "both are still being prepared")
	code, body := s.post(t, `{"messages":[{"role":"user","content":[{"type":"image_url","image_url":{"url":"data:image/png;base64,@@@@"}}]}]}`, testKey)
	assert.Equal(t, 429, code, body)
	code, body = s.post(t, slow, testKey)
	assert.Equal(t, 429, code, body)
	assert.EqualValues(t, 2, hits.Load(), "the refused request fetched nothing")
	close(gate)
	wg.Wait()
	assert.Equal(t, []int{200, 200}, codes)
	code, body = s.post(t, slow, testKey)
	assert.Equal(t, 200, code, "room again: %s", body)
}

// TestBodyDeadlineClearedForTheAnswer: the body deadline ends with the
// body: a request waiting longer than BodyTimeout for a sequence is
// answered (a read deadline left on the connection would end the
// server's watch for the client's hang-up and cancel the request). A
// guard: net/http's HTTP/1 server clears the deadline itself too.
func TestBodyDeadlineClearedForTheAnswer(t *testing.T) {
	s := newServer(t, pipeline.Options{Sequences: 1}, openai.Options{BodyTimeout: 300 * time.Millisecond})
	next, release := holdSequence(t, s.p)
	_, err, ok := next()
	require.True(t, ok)
	require.NoError(t, err)
	go func() {
		time.Sleep(time.Second)
		release()
	}()
	start := time.Now()
	code, body := s.post(t, `{"messages":[{"role":"user","content":"a"}],"max_tokens":3}`, testKey)
	assert.Equal(t, 200, code, body)
	content(t, body) // an answer, not an empty 200 of a cancelled request
	assert.Greater(t, time.Since(start), 900*time.Millisecond, "it waited for the held sequence")
}

// TestHostileRequests: requests built to cost the server are refused
// cheaply with a clear status.
func TestHostileRequests(t *testing.T) {
	s := newServer(t, pipeline.Options{}, openai.Options{MaxBodyBytes: 4 << 20, MaxMessages: 64})
	one := `{"role":"user","content":"a"}`
	cases := []struct {
		name   string
		body   string
		status int
		want   string
	}{
		{"deep nesting", `{"messages":[` + one + `],"metadata":` + strings.Repeat("[", 200000) + strings.Repeat("]", 200000) + `}`, 400, "depth"},
		{"many messages", `{"messages":[` + strings.Repeat(one+",", 100) + one + `]}`, 400, "at most 64"},
		{"many parts", `{"messages":[{"role":"user","content":[` + strings.Repeat(`{"type":"text","text":"a"},`, 100) + `{"type":"text","text":"a"}]}]}`, 400, "at most 64"},
		{"giant stop", `{"messages":[` + one + `],"stop":["` + strings.Repeat("x", 100000) + `"]}`, 400, "stop sequence"},
		{"huge max_tokens", `{"messages":[` + one + `],"max_tokens":1e12}`, 400, "max_tokens"},
		{"huge unknown field", `{"messages":[` + one + `],"max_tokens":2,"x_unknown":"` + strings.Repeat("z", 3<<20) + `"}`, 200, ""},
	}
	for _, c := range cases {
		start := time.Now()
		code, body := s.post(t, c.body, testKey)
		if assert.Equal(t, c.status, code, "%s: %.300s", c.name, body) && c.want != "" {
			assert.Contains(t, body, c.want, c.name)
		}
		t.Logf("%s: %d in %v", c.name, code, time.Since(start).Round(time.Millisecond))
	}

	// Raw requests: what net/http and the handler do with odd framing.
	raw := []struct {
		name, req string
		status    int
	}{
		{"declared body too large, not sent", "POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " + testKey + "\r\nContent-Length: 999999999\r\n\r\n", 413},
		{"two content lengths", "POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n", 400},
		{"unknown transfer encoding", "POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip, chunked\r\n\r\n", 501},
		{"HEAD chat", "HEAD /v1/chat/completions HTTP/1.1\r\nHost: x\r\n\r\n", 405},
		{"OPTIONS chat", "OPTIONS /v1/chat/completions HTTP/1.1\r\nHost: x\r\n\r\n", 405},
		{"HEAD models", "HEAD /v1/models HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " + testKey + "\r\n\r\n", 200},
		{"100-continue, no key", "POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 40\r\n\r\n", 401},
	}
	for _, c := range raw {
		conn := rawConn(t, s)
		start := time.Now()
		_, err := io.WriteString(conn, c.req)
		require.NoError(t, err)
		conn.SetReadDeadline(time.Now().Add(5 * time.Second))
		req, _ := http.ReadRequest(bufio.NewReader(strings.NewReader(c.req)))
		resp, err := http.ReadResponse(bufio.NewReader(conn), req)
		if assert.NoError(t, err, c.name) {
			assert.Equal(t, c.status, resp.StatusCode, c.name)
			resp.Body.Close()
		}
		assert.Less(t, time.Since(start), 2*time.Second, "%s: answered at once", c.name)
	}
}

func pngBytes(t testing.TB) []byte {
	u := pngDataURL(t, 32, 32, 5)
	return must(base64.StdEncoding.DecodeString(strings.TrimPrefix(u, "data:image/png;base64,")))
}

// TestDeadlinesPerRequest: the deadlines the handler sets belong to one
// request: a keep-alive connection idle for longer than BodyTimeout and
// WriteTimeout still serves its next request.
func TestDeadlinesPerRequest(t *testing.T) {
	s := newServer(t, pipeline.Options{}, openai.Options{BodyTimeout: 200 * time.Millisecond, WriteTimeout: 200 * time.Millisecond, RequestTimeout: 2 * time.Second})
	conn := rawConn(t, s)
	br := bufio.NewReader(conn)
	body := `{"messages":[{"role":"user","content":"a"}],"max_tokens":2}`
	for i := range 2 {
		fmt.Fprintf(conn, "POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\nContent-Length: %d\r\n\r\n%s", testKey, len(body), body)
		resp, err := http.ReadResponse(br, nil)
		require.NoError(t, err, "request %d", i)
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		assert.Equal(t, 200, resp.StatusCode, "request %d", i)
		fmt.Fprintf(conn, "GET /v1/models HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\n\r\n", testKey)
		resp, err = http.ReadResponse(br, nil)
		require.NoError(t, err, "request %d", i)
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		assert.Equal(t, 200, resp.StatusCode, "request %d", i)
		time.Sleep(2500 * time.Millisecond) // past every deadline the last request set
	}
}
