package main

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/vlm-go/vlm/gguf"
	"github.com/vlm-go/vlm/llama"
	"github.com/vlm-go/vlm/pipeline"
	"github.com/vlm-go/vlm/sampler"
)

// isolationOptions configure the -isolation benchmark.
type isolationOptions struct {
	preset   string
	typ      gguf.TensorType
	threads  int
	gen      int // tokens per answer
	reps     int
	streams  int // concurrent streams of the aggregate measurement
	ttfts    int // time-to-first-token samples per repetition and mode
	cacheDir string
}

// runIsolation measures what pipeline.ChildProcess costs against the same
// pipeline in process, in one run: one stream's decode speed (as the
// caller sees tokens arrive), the time to first token of a short text
// request, the aggregate decode speed of o.streams concurrent streams, and
// the parent's resident memory with the model in the child. Repetitions
// alternate the modes, so that a slow spell of a shared machine hits both.
func runIsolation(o isolationOptions) error {
	ctx := context.Background()
	mp, pp, err := ensurePreset(ctx, o.preset, o.typ, true, o.cacheDir)
	if err != nil {
		return err
	}
	m, err := llama.Load(ctx, mp, llama.LoadOptions{VocabOnly: true})
	if err != nil {
		return err
	}
	ban := eogBan(m)
	m.Close()
	gen := pipeline.GenerateOptions{MaxTokens: o.gen, Sampler: sampler.Config{LogitBias: ban}}
	opts := pipeline.Options{Threads: o.threads, SequenceLength: 1024, Sequences: o.streams}

	// The child first, alone: the parent's memory after a burst of
	// streams, before anything is loaded in this process.
	copts := opts
	copts.Process = pipeline.ChildProcess
	begin := time.Now()
	child, err := pipeline.New(ctx, mp, pp, copts)
	if err != nil {
		return err
	}
	defer child.Close()
	fmt.Fprintf(os.Stderr, "child process loaded in %v\n", time.Since(begin).Round(time.Millisecond))
	if _, err := aggregateOn(ctx, child, gen, o.streams); err != nil {
		return err
	}
	if _, err := singleDecode(ctx, child, gen); err != nil {
		return err
	}
	parentRSS, parentHWM := procStatusMiB("VmRSS:"), procStatusMiB("VmHWM:")
	fmt.Fprintf(os.Stderr, "warm-up done (%v): parent RSS %.1f MiB\n", time.Since(begin).Round(time.Millisecond), parentRSS)

	in, err := pipeline.New(ctx, mp, pp, opts)
	if err != nil {
		return err
	}
	defer in.Close()
	if _, err := aggregateOn(ctx, in, gen, o.streams); err != nil {
		return err
	}
	modes := []*pipeline.Pipeline{in, child}
	var decode, agg [2]float64
	var ttft, prefill [2][]time.Duration
	q := 0
	for rep := range o.reps {
		order := []int{0, 1}
		if rep%2 == 1 {
			order = []int{1, 0}
		}
		for _, k := range order {
			p := modes[k]
			d, err := singleDecode(ctx, p, gen)
			if err != nil {
				return err
			}
			decode[k] = max(decode[k], d)
			for range o.ttfts {
				q++
				r, err := p.Run(ctx, pipeline.Input{Text: fmt.Sprintf("Question %06d: what colour is the sky?", q)}, pipeline.GenerateOptions{MaxTokens: 1})
				if err != nil {
					return err
				}
				ttft[k] = append(ttft[k], r.Stats.TimeToFirstToken)
				prefill[k] = append(prefill[k], r.Stats.PrefillTime)
			}
			a, err := aggregateOn(ctx, p, gen, o.streams)
			if err != nil {
				return err
			}
			agg[k] = max(agg[k], a)
			fmt.Fprintf(os.Stderr, "rep %d %s: decode %.1f tok/s, aggregate %.1f tok/s (%v)\n", rep+1, []string{"same process", "child process"}[k], d, a, time.Since(begin).Round(time.Millisecond))
		}
	}
	med := func(d []time.Duration) time.Duration {
		d = slices.Clone(d)
		slices.Sort(d)
		return d[len(d)/2]
	}
	t0, t1 := med(ttft[0]), med(ttft[1])
	fmt.Printf("preset %s %s, %d threads, %d tokens per answer, best of %d (TTFT: median of %d)\n", o.preset, o.typ, o.threads, o.gen, o.reps, o.reps*o.ttfts)
	fmt.Printf("%-28s %14s %14s %12s\n", "", "same process", "child process", "child/same")
	fmt.Printf("%-28s %14.1f %14.1f %11.3f×\n", "decode tok/s (1 stream)", decode[0], decode[1], decode[1]/decode[0])
	fmt.Printf("%-28s %14.1f %14.1f %11.3f×\n", fmt.Sprintf("decode tok/s (%d streams)", o.streams), agg[0], agg[1], agg[1]/agg[0])
	fmt.Printf("%-28s %14v %14v %+11.2fms\n", "text TTFT (median)", t0.Round(10*time.Microsecond), t1.Round(10*time.Microsecond), float64(t1-t0)/1e6)
	fmt.Printf("%-28s %14v %14v %+11.2fms\n", "  of which prefill (median)", med(prefill[0]).Round(10*time.Microsecond), med(prefill[1]).Round(10*time.Microsecond), float64(med(prefill[1])-med(prefill[0]))/1e6)
	// On a shared machine the prefill's noise swamps the medians; the
	// fastest sample, and the time outside the engine's prefill (the
	// request and the token crossing the socket, rendering, tokenizing),
	// show the overhead.
	tmin := func(d []time.Duration) time.Duration { return slices.Min(d) }
	fmt.Printf("%-28s %14v %14v %+11.2fms\n", "text TTFT (fastest)", tmin(ttft[0]).Round(10*time.Microsecond), tmin(ttft[1]).Round(10*time.Microsecond), float64(tmin(ttft[1])-tmin(ttft[0]))/1e6)
	var outside [2][]time.Duration
	for k := range 2 {
		for i := range ttft[k] {
			outside[k] = append(outside[k], ttft[k][i]-prefill[k][i])
		}
	}
	fmt.Printf("%-28s %14v %14v %+11.2fms\n", "TTFT − prefill (median)", med(outside[0]).Round(10*time.Microsecond), med(outside[1]).Round(10*time.Microsecond), float64(med(outside[1])-med(outside[0]))/1e6)
	fmt.Printf("parent RSS with the model in the child, after %d streams: %.1f MiB (peak %.1f MiB)\n", o.streams, parentRSS, parentHWM)
	return nil
}

// singleDecode answers one request and returns its decode speed as the
// caller sees it: tokens after the first over the time from the first to
// the last.
func singleDecode(ctx context.Context, p *pipeline.Pipeline, gen pipeline.GenerateOptions) (float64, error) {
	var first, last time.Time
	n := 0
	for tok, err := range p.Stream(ctx, pipeline.Input{Text: "Tell a long story about a lighthouse."}, gen).Tokens() {
		if err != nil {
			return 0, err
		}
		if tok.ID < 0 {
			continue
		}
		if last = time.Now(); n == 0 {
			first = last
		}
		n++
	}
	if n < 2 {
		return 0, fmt.Errorf("%d tokens", n)
	}
	return float64(n-1) / last.Sub(first).Seconds(), nil
}

// procStatusMiB reads a field of /proc/self/status in MiB.
func procStatusMiB(key string) float64 {
	f, err := os.Open("/proc/self/status")
	if err != nil {
		return 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), key); ok {
			kb, _ := strconv.Atoi(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(rest), "kB")))
			return float64(kb) / 1024
		}
	}
	return 0
}
