package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"image/png"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"time"

	"github.com/vlm-go/vlm/gguf"
)

// serverOptions configure the -servers benchmark.
type serverOptions struct {
	preset   string
	typ      gguf.TensorType
	threads  int
	parallel int
	bins     []string // vlm-server binaries, measured in this order, back to back
	reps     int
	cacheDir string
}

// runServers measures, for each vlm-server binary in turn, the time from
// sending a streaming chat request about a new 512 px picture (the
// preset's tiling) to the first token, on a server started with -parallel,
// and prints each one's ratio to the first binary.
func runServers(o serverOptions) error {
	ctx := context.Background()
	mp, pp, err := ensurePreset(ctx, o.preset, o.typ, false, o.cacheDir)
	if err != nil {
		return err
	}
	var firsts []time.Duration
	for i, bin := range o.bins {
		best := time.Duration(0)
		for r := 0; r < o.reps; r++ {
			d, err := firstToken(bin, mp, pp, o.threads, o.parallel, uint8(60*r+7*i))
			if err != nil {
				return err
			}
			fmt.Fprintf(os.Stderr, "%s: first token after %.1f s\n", bin, d.Seconds())
			if best == 0 || d < best {
				best = d
			}
		}
		firsts = append(firsts, best)
	}
	fmt.Printf("first question about a new 512 px picture, vlm-server -parallel %d -threads %d, %s %s, best of %d\n", o.parallel, o.threads, o.preset, o.typ, o.reps)
	for i, bin := range o.bins {
		fmt.Printf("%-40s %8.1f s   %s/this: %.2f×\n", bin, firsts[i].Seconds(), o.bins[0], firsts[0].Seconds()/firsts[i].Seconds())
	}
	return nil
}

// firstToken starts bin, waits until it is ready, asks about a new picture
// (shade makes it new) and returns the time to the first streamed token.
func firstToken(bin, mp, pp string, threads, parallel int, shade uint8) (time.Duration, error) {
	addr := "127.0.0.1:18931"
	cmd := exec.Command(bin, "-model", mp, "-mmproj", pp, "-addr", addr, "-parallel", fmt.Sprint(parallel), "-threads", fmt.Sprint(threads), "-ctx", "4096")
	cmd.Stderr = nil
	if err := cmd.Start(); err != nil {
		return 0, err
	}
	defer func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		done := make(chan struct{})
		go func() { _ = cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(20 * time.Second):
			_ = cmd.Process.Kill()
			<-done
		}
	}()
	base := "http://" + addr
	deadline := time.Now().Add(3 * time.Minute)
	for {
		resp, err := http.Get(base + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				break
			}
		}
		if time.Now().After(deadline) {
			return 0, fmt.Errorf("%s: not ready after 3 minutes", bin)
		}
		time.Sleep(200 * time.Millisecond)
	}
	var buf bytes.Buffer
	if err := png.Encode(&buf, pictureSeeded(512, shade)); err != nil {
		return 0, err
	}
	body, err := json.Marshal(map[string]any{
		"model": "m", "stream": true, "max_tokens": 4,
		"messages": []any{map[string]any{"role": "user", "content": []any{
			map[string]any{"type": "image_url", "image_url": map[string]string{"url": "data:image/png;base64," + base64.StdEncoding.EncodeToString(buf.Bytes())}},
			map[string]any{"type": "text", "text": "What is in this picture?"},
		}}},
	})
	if err != nil {
		return 0, err
	}
	t0 := time.Now()
	resp, err := http.Post(base+"/v1/chat/completions", "application/json", bytes.NewReader(body))
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		return 0, fmt.Errorf("%s: status %s", bin, resp.Status)
	}
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, "data: ") && strings.Contains(line, `"content"`) {
			return time.Since(t0), nil
		}
	}
	return 0, fmt.Errorf("%s: stream ended without content (%v)", bin, sc.Err())
}
