// Command vlm-soak runs vlm-server under mixed traffic with abuse mixed in
// for a while and prints whether the server stayed healthy: no 5xx, resident
// memory back near where it started, goroutines and file descriptors flat.
// It is a soak test to run by hand (minutes), not part of the test suite:
//
//	./build.sh go build -o bin/vlm-server ./cmd/vlm-server
//	./build.sh go run ./cmd/vlm-soak -server bin/vlm-server -duration 10m
//
// It starts the server as a child process on a loopback port (the demo pair
// unless -server-args names a model), then runs -clients clients that each
// loop over: a streamed question about a small picture, a text question,
// a client that hangs up mid-stream; and, as abuse, a request with eight
// 7000×7000 PNGs (49 Mpx each), probes of unknown /v1/ paths, a body that
// trickles one byte a second, malformed JSON, a wrong API key. Every
// -sample it prints the server's RSS, open files, threads and goroutines
// (from /proc and /metrics) with the statuses seen; at the end, the figures
// against the first sample taken after a warm-up round, and exit status 1
// if a 5xx was seen or RSS, goroutines or files grew past the bounds.
package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"flag"
	"fmt"
	"image"
	"image/color"
	"image/png"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

func main() {
	os.Exit(run())
}

func run() int {
	server := flag.String("server", "bin/vlm-server", "the vlm-server binary to start")
	serverArgs := flag.String("server-args", "-parallel 4 -threads 2", "its flags (besides -addr)")
	duration := flag.Duration("duration", 10*time.Minute, "how long to run")
	clients := flag.Int("clients", 16, "concurrent clients")
	sample := flag.Duration("sample", 30*time.Second, "how often to print the figures")
	warmup := flag.Duration("warmup", time.Minute, "mixed traffic before the reference sample (caches, allocator arenas, every sequence touched)")
	maxGrowth := flag.Float64("max-rss-growth", 0.10, "largest RSS growth allowed at the end, as a fraction of the start")
	abuse := flag.Bool("abuse", true, "mix abusive requests in")
	flag.Parse()

	const key = "soak-key"
	cmd := exec.Command(*server, append(strings.Fields(*serverArgs), "-addr", "127.0.0.1:0")...)
	cmd.Env = append(os.Environ(), "VLM_API_KEY="+key)
	stderr, err := cmd.StderrPipe()
	if err != nil {
		fmt.Fprintln(os.Stderr, "vlm-soak:", err)
		return 2
	}
	if err := cmd.Start(); err != nil {
		fmt.Fprintln(os.Stderr, "vlm-soak: starting the server:", err)
		return 2
	}
	defer func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		done := make(chan struct{})
		go func() { _ = cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(40 * time.Second):
			_ = cmd.Process.Kill()
		}
	}()
	addrRe := regexp.MustCompile(`addr=(127\.0\.0\.1:\d+)`)
	addrc := make(chan string, 1)
	var logTail tail
	go func() {
		sc := bufio.NewScanner(stderr)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		sent := false
		for sc.Scan() {
			line := sc.Text()
			logTail.add(line)
			if m := addrRe.FindStringSubmatch(line); m != nil && !sent && strings.Contains(line, "serving") {
				addrc <- m[1]
				sent = true
			}
		}
	}()
	var base string
	select {
	case a := <-addrc:
		base = "http://" + a
	case <-time.After(5 * time.Minute):
		fmt.Fprintln(os.Stderr, "vlm-soak: the server did not start:\n"+logTail.String())
		return 2
	}
	pid := cmd.Process.Pid
	fmt.Printf("vlm-soak: server pid %d at %s, %d clients for %v (abuse %v)\n", pid, base, *clients, *duration, *abuse)

	s := &soak{base: base, key: key, pid: pid, statuses: map[string]int{}}
	s.smallPic = pngDataURL(64, 48, 0)
	s.bigPic = solidPNGDataURL(7000, 7000)

	// A warm-up of the same traffic (image caches, KV cells of every
	// sequence, allocator arenas), then, idle, the reference sample; the
	// last sample is taken idle after the traffic too.
	ctx := context.Background()
	traffic := func(ctx context.Context) *sync.WaitGroup {
		var wg sync.WaitGroup
		for c := range *clients {
			wg.Add(1)
			go func() {
				defer wg.Done()
				rng := rand.New(rand.NewPCG(uint64(c), uint64(time.Now().UnixNano())))
				for i := 0; ctx.Err() == nil; i++ {
					switch k := rng.IntN(20); {
					case !*abuse || k < 10:
						s.chat(ctx, c*100000+i, true)
					case k < 12:
						s.chat(ctx, c*100000+i, false)
					case k < 13:
						s.bigImages(ctx)
					case k < 15:
						s.unknownPath(ctx, c*100000+i)
					case k < 16:
						s.trickle(ctx)
					case k < 18:
						s.malformed(ctx, rng)
					default:
						s.hangUp(ctx, c*100000+i)
					}
				}
			}()
		}
		return &wg
	}
	idle := func() {
		http.DefaultClient.CloseIdleConnections() // their server goroutines are not the server's leak
		time.Sleep(5 * time.Second)               // connections close, sequences free
	}
	wctx, wcancel := context.WithTimeout(ctx, *warmup)
	traffic(wctx).Wait()
	wcancel()
	idle()
	first := s.sample()
	fmt.Printf("start (after %v of warm-up): %s\n", *warmup, first)

	ctx, cancel := context.WithTimeout(ctx, *duration)
	defer cancel()
	wg := traffic(ctx)
	tick := time.NewTicker(*sample)
	defer tick.Stop()
	peak := first
loop:
	for {
		select {
		case <-ctx.Done():
			break loop
		case <-tick.C:
			f := s.sample()
			peak.rss = max(peak.rss, f.rss)
			fmt.Printf("%s: %s\n", time.Since(first.at).Round(time.Second), f)
		}
	}
	wg.Wait()
	idle()
	last := s.sample()
	fmt.Printf("end: %s\n", last)
	fmt.Printf("statuses: %s\n", s.statusLine())

	failed := false
	if n := s.count5xx(); n > 0 {
		fmt.Printf("FAIL: %d responses with a 5xx status\n", n)
		failed = true
	}
	growth := float64(last.rss-first.rss) / float64(first.rss)
	fmt.Printf("rss: start %s, peak %s, end %s (%+.1f%%)\n", mib(first.rss), mib(peak.rss), mib(last.rss), 100*growth)
	if growth > *maxGrowth {
		fmt.Printf("FAIL: RSS grew %.1f%% (bound %.0f%%)\n", 100*growth, 100**maxGrowth)
		failed = true
	}
	if first.goroutines >= 0 && last.goroutines > first.goroutines+8 {
		fmt.Printf("FAIL: goroutines %d → %d\n", first.goroutines, last.goroutines)
		failed = true
	}
	if last.fds > first.fds+8 {
		fmt.Printf("FAIL: open files %d → %d\n", first.fds, last.fds)
		failed = true
	}
	if failed {
		fmt.Println("server log (last lines):\n" + logTail.String())
		return 1
	}
	fmt.Println("PASS")
	return 0
}

type soak struct {
	base, key string
	pid       int
	smallPic  string
	bigPic    string
	mu        sync.Mutex
	statuses  map[string]int
	requests  atomic.Int64
}

func (s *soak) record(kind string, status int, err error) {
	s.requests.Add(1)
	k := kind + ":" + strconv.Itoa(status)
	if err != nil && status == 0 {
		k = kind + ":error"
	}
	s.mu.Lock()
	s.statuses[k]++
	s.mu.Unlock()
}

func (s *soak) count5xx() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for k, v := range s.statuses {
		if i := strings.LastIndexByte(k, ':'); i >= 0 && strings.HasPrefix(k[i+1:], "5") {
			n += v
		}
	}
	return n
}

func (s *soak) statusLine() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	keys := make([]string, 0, len(s.statuses))
	for k := range s.statuses {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var b strings.Builder
	for _, k := range keys {
		fmt.Fprintf(&b, "%s=%d ", k, s.statuses[k])
	}
	return strings.TrimSpace(b.String())
}

func (s *soak) post(ctx context.Context, path, body string) (*http.Response, error) {
	req, err := http.NewRequestWithContext(ctx, "POST", s.base+path, strings.NewReader(body))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Authorization", "Bearer "+s.key)
	req.Header.Set("Content-Type", "application/json")
	return http.DefaultClient.Do(req)
}

// chat asks about the small picture (or text only), reading the whole answer.
func (s *soak) chat(ctx context.Context, i int, picture bool) {
	content := fmt.Sprintf(`"Question %d?"`, i)
	kind := "text"
	if picture {
		content = fmt.Sprintf(`[{"type":"image_url","image_url":{"url":%q}},{"type":"text","text":"What is this, %d?"}]`, s.smallPic, i)
		kind = "picture"
	}
	body := fmt.Sprintf(`{"stream":%v,"max_tokens":%d,"temperature":0.8,"seed":%d,"messages":[{"role":"user","content":%s}]}`,
		i%2 == 0, 8+i%24, i, content)
	resp, err := s.post(ctx, "/v1/chat/completions", body)
	if err != nil {
		if ctx.Err() == nil {
			s.record(kind, 0, err)
		}
		return
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if ctx.Err() == nil || resp.StatusCode != 200 {
		s.record(kind, resp.StatusCode, nil)
	}
}

// hangUp reads two events of a stream, then goes away.
func (s *soak) hangUp(ctx context.Context, i int) {
	cctx, cancel := context.WithCancel(ctx)
	defer cancel()
	body := fmt.Sprintf(`{"stream":true,"max_tokens":64,"seed":%d,"messages":[{"role":"user","content":"Tell me a long story, %d."}]}`, i, i)
	resp, err := s.post(cctx, "/v1/chat/completions", body)
	if err != nil {
		if ctx.Err() == nil {
			s.record("hangup", 0, err)
		}
		return
	}
	sc := bufio.NewScanner(resp.Body)
	for n := 0; n < 2 && sc.Scan(); n++ {
	}
	cancel()
	resp.Body.Close()
	s.record("hangup", resp.StatusCode, nil)
}

// bigImages sends eight 7000×7000 pictures (a small body: they are solid).
func (s *soak) bigImages(ctx context.Context) {
	var parts []string
	for range 8 {
		parts = append(parts, fmt.Sprintf(`{"type":"image_url","image_url":{"url":%q}}`, s.bigPic))
	}
	parts = append(parts, `{"type":"text","text":"Which is bigger?"}`)
	body := `{"max_tokens":4,"messages":[{"role":"user","content":[` + strings.Join(parts, ",") + `]}]}`
	resp, err := s.post(ctx, "/v1/chat/completions", body)
	if err != nil {
		if ctx.Err() == nil {
			s.record("big", 0, err)
		}
		return
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	s.record("big", resp.StatusCode, nil)
}

// unknownPath probes a path that does not exist, without a key.
func (s *soak) unknownPath(ctx context.Context, i int) {
	req, _ := http.NewRequestWithContext(ctx, "GET", fmt.Sprintf("%s/v1/probe-%d-%d", s.base, i, rand.Int()), nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		if ctx.Err() == nil {
			s.record("unknown", 0, err)
		}
		return
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	s.record("unknown", resp.StatusCode, nil)
}

// trickle promises a large body and sends a byte a second until the server
// cuts it off (or 60 s pass).
func (s *soak) trickle(ctx context.Context) {
	conn, err := net.Dial("tcp", strings.TrimPrefix(s.base, "http://"))
	if err != nil {
		s.record("trickle", 0, err)
		return
	}
	defer conn.Close()
	fmt.Fprintf(conn, "POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\nContent-Type: application/json\r\nContent-Length: 1000000\r\n\r\n", s.key)
	start := time.Now()
	for time.Since(start) < 60*time.Second && ctx.Err() == nil {
		if _, err := conn.Write([]byte("{")); err != nil {
			s.record("trickle-cut", int(time.Since(start).Seconds()/10)*10, nil)
			return
		}
		_ = conn.SetReadDeadline(time.Now().Add(time.Second))
		var b [512]byte
		if n, err := conn.Read(b[:]); n > 0 || (err != nil && !errors.Is(err, os.ErrDeadlineExceeded)) {
			status := 0
			if f := strings.Fields(string(b[:n])); len(f) > 1 {
				status, _ = strconv.Atoi(f[1])
			}
			s.record("trickle-cut", status, nil)
			return
		}
	}
	if ctx.Err() == nil {
		s.record("trickle-open60s", 0, nil)
	}
}

// malformed sends one of several broken requests.
func (s *soak) malformed(ctx context.Context, rng *rand.Rand) {
	bodies := []string{
		`{"messages":[{"role":"user","content":"unterminated`,
		`{"messages":` + strings.Repeat("[", 100000) + strings.Repeat("]", 100000) + `}`,
		`{"max_tokens":1000000000,"messages":[{"role":"user","content":"hi"}]}`,
		`{"messages":[{"role":"user","content":[{"type":"image_url","image_url":{"url":"data:image/png;base64,AAAA"}}]}]}`,
		`{"stop":["` + strings.Repeat("x", 100000) + `"],"messages":[{"role":"user","content":"hi"}]}`,
		`{"messages":[` + strings.Repeat(`{"role":"user","content":"a"},`, 20000) + `{"role":"user","content":"a"}]}`,
	}
	kind := "malformed"
	var resp *http.Response
	var err error
	if rng.IntN(5) == 0 {
		kind = "badkey"
		req, _ := http.NewRequestWithContext(ctx, "POST", s.base+"/v1/chat/completions", strings.NewReader(`{"messages":[{"role":"user","content":"hi"}]}`))
		req.Header.Set("Authorization", "Bearer wrong")
		resp, err = http.DefaultClient.Do(req)
	} else {
		resp, err = s.post(ctx, "/v1/chat/completions", bodies[rng.IntN(len(bodies))])
	}
	if err != nil {
		if ctx.Err() == nil {
			s.record(kind, 0, err)
		}
		return
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	s.record(kind, resp.StatusCode, nil)
}

// figures is one sample of the server's health.
type figures struct {
	at         time.Time
	rss        int64
	fds        int
	threads    int
	goroutines int
	requests   int64
}

func (f figures) String() string {
	return fmt.Sprintf("rss %s, fds %d, threads %d, goroutines %d, requests %d", mib(f.rss), f.fds, f.threads, f.goroutines, f.requests)
}

func (s *soak) sample() figures {
	f := figures{at: time.Now(), goroutines: -1, requests: s.requests.Load()}
	if data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", s.pid)); err == nil {
		for _, line := range strings.Split(string(data), "\n") {
			fs := strings.Fields(line)
			if len(fs) < 2 {
				continue
			}
			switch fs[0] {
			case "VmRSS:":
				kb, _ := strconv.ParseInt(fs[1], 10, 64)
				f.rss = kb << 10
			case "Threads:":
				f.threads, _ = strconv.Atoi(fs[1])
			}
		}
	}
	if ents, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", s.pid)); err == nil {
		f.fds = len(ents)
	}
	if resp, err := http.Get(s.base + "/metrics"); err == nil {
		sc := bufio.NewScanner(resp.Body)
		for sc.Scan() {
			if v, ok := strings.CutPrefix(sc.Text(), "go_goroutines "); ok {
				f.goroutines, _ = strconv.Atoi(v)
			}
		}
		resp.Body.Close()
	}
	return f
}

func mib(b int64) string { return fmt.Sprintf("%.0f MiB", float64(b)/(1<<20)) }

// tail keeps the server's last log lines.
type tail struct {
	mu    sync.Mutex
	lines []string
}

func (t *tail) add(l string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.lines = append(t.lines, l)
	if len(t.lines) > 40 {
		t.lines = t.lines[len(t.lines)-40:]
	}
}

func (t *tail) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return strings.Join(t.lines, "\n")
}

func pngDataURL(w, h int, shade uint8) string {
	img := image.NewNRGBA(image.Rect(0, 0, w, h))
	for y := range h {
		for x := range w {
			img.SetNRGBA(x, y, color.NRGBA{uint8(x * 255 / w), shade, uint8(y * 255 / h), 255})
		}
	}
	return encodePNG(img)
}

// solidPNGDataURL is a w×h picture of one colour: a few hundred KiB of PNG
// that decodes to w×h×4 bytes.
func solidPNGDataURL(w, h int) string {
	img := image.NewNRGBA(image.Rect(0, 0, w, h))
	for i := 0; i < len(img.Pix); i += 4 {
		img.Pix[i], img.Pix[i+1], img.Pix[i+2], img.Pix[i+3] = 200, 120, 40, 255
	}
	return encodePNG(img)
}

func encodePNG(img image.Image) string {
	var buf bytes.Buffer
	enc := png.Encoder{CompressionLevel: png.BestCompression}
	if err := enc.Encode(&buf, img); err != nil {
		panic(err)
	}
	return "data:image/png;base64," + base64.StdEncoding.EncodeToString(buf.Bytes())
}
