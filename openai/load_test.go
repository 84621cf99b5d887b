package openai_test

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net/http"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/vlm-go/vlm/openai"
	"github.com/vlm-go/vlm/pipeline"
)

// TestLoad: 32 clients × 4 streaming requests with pictures on loopback,
// some disconnecting mid-stream. Every request that stays connected gets
// its answer or a 429; no 5xx; the metrics count what the clients saw;
// goroutines return to their baseline. Aggregate tokens/s and TTFT
// percentiles are logged (a benchmark, not a timed assertion).
func TestLoad(t *testing.T) {
	s := newServer(t, pipeline.Options{Sequences: 8, SequenceLength: 512, MaxWaiting: 16}, openai.Options{MaxTokens: 64})
	http.DefaultClient.CloseIdleConnections()
	before := runtime.NumGoroutine()
	pics := make([]string, 4)
	for i := range pics {
		pics[i] = pngDataURL(t, 32+8*i, 32, uint8(60*i))
	}
	var mu sync.Mutex
	status := map[int]int{}
	var ttfts []time.Duration
	tokens, gone := 0, 0
	start := time.Now()
	var wg sync.WaitGroup
	for c := range 32 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 4 {
				disconnect := (c+i)%7 == 3
				body := fmt.Sprintf(`{"stream":true,"max_tokens":%d,"temperature":0.7,"seed":%d,"messages":[{"role":"user","content":[{"type":"image_url","image_url":{"url":"%s"}},{"type":"text","text":"Picture %d, client %d?"}]}]}`,
					16+c%16, c*4+i+1, pics[(c+i)%4], i, c)
				ctx, cancel := context.WithCancel(context.Background())
				req, _ := http.NewRequestWithContext(ctx, "POST", s.srv.URL+"/v1/chat/completions", strings.NewReader(body))
				req.Header.Set("Authorization", "Bearer "+testKey)
				t0 := time.Now()
				resp, err := http.DefaultClient.Do(req)
				if err != nil {
					cancel()
					t.Errorf("client %d request %d: %v", c, i, err)
					continue
				}
				n, first := 0, time.Duration(0)
				if resp.StatusCode == 200 {
					sc := bufio.NewScanner(resp.Body)
					for sc.Scan() {
						line := sc.Text()
						if strings.HasPrefix(line, `data: {"choices":[{"delta":{"content":`) && !strings.Contains(line, `"content":""`) {
							if n == 0 {
								first = time.Since(t0)
							}
							n++
							if disconnect && n == 2 {
								break
							}
						}
					}
				} else {
					io.Copy(io.Discard, resp.Body)
				}
				resp.Body.Close()
				cancel()
				mu.Lock()
				if disconnect && resp.StatusCode == 200 {
					gone++
				} else {
					status[resp.StatusCode]++
					tokens += n
					if first > 0 {
						ttfts = append(ttfts, first)
					}
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	for code := range status {
		assert.Contains(t, []int{200, 429}, code, "statuses %v", status)
	}
	require.Positive(t, status[200])
	sort.Slice(ttfts, func(i, j int) bool { return ttfts[i] < ttfts[j] })
	pct := func(p float64) time.Duration { return ttfts[int(p*float64(len(ttfts)-1))] }
	t.Logf("statuses %v, %d disconnected; %d tokens in %v: %.1f tok/s; ttft p50 %v p99 %v",
		status, gone, tokens, elapsed.Round(time.Millisecond), float64(tokens)/elapsed.Seconds(), pct(0.5), pct(0.99))

	// The metrics agree with what the clients saw.
	require.Eventually(t, func() bool { return s.p.EngineStats().Active == 0 }, 10*time.Second, 10*time.Millisecond)
	metrics := scrape(t, s)
	ok, left := metrics[`vlm_http_requests_total{path="/v1/chat/completions",status="200"}`], metrics[`vlm_http_requests_total{path="/v1/chat/completions",status="499"}`]
	// A client that hangs up after its second token may still have been
	// sent the whole (short) answer: the server counts a 200 then.
	assert.Equal(t, float64(status[200]+gone), ok+left, "answered and disconnected")
	assert.GreaterOrEqual(t, ok, float64(status[200]), "answered")
	assert.LessOrEqual(t, left, float64(gone), "disconnected")
	assert.Equal(t, float64(status[429]), metrics[`vlm_http_requests_total{path="/v1/chat/completions",status="429"}`], "refused")
	assert.Zero(t, metrics["vlm_active_sequences"])
	assert.Zero(t, metrics["vlm_queue_depth"])
	assert.Positive(t, metrics["vlm_image_cache_hits_total"])

	http.DefaultClient.CloseIdleConnections()
	deadline := time.Now().Add(5 * time.Second)
	for runtime.NumGoroutine() > before && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	if n := runtime.NumGoroutine(); n > before {
		buf := make([]byte, 1<<16)
		t.Fatalf("goroutines: %d before, %d after:\n%s", before, n, buf[:runtime.Stack(buf, true)])
	}
}

// scrape reads /metrics into name{labels} → value.
func scrape(t testing.TB, s *server) map[string]float64 {
	t.Helper()
	resp, err := http.Get(s.srv.URL + "/metrics")
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
