// Command vlm-stall measures what issue 27 asks of an image encode beside
// a batching pipeline, on a testmodel preset (random weights, real shapes),
// and prints ratios measured within one run:
//
//   - first: the first question about a new picture (preset's tiling: a
//     512 px picture is 17 tiles on smolvlm-256m) with Sequences 8 against
//     Sequences 1: time to first token.
//
//   - text: time to first token of short text requests sent one after
//     another while a new picture is encoded, against the same requests on
//     the idle pipeline (median and p95).
//
//   - greedy: 8 text prompts answered greedily one at a time and all at
//     once through one 8-sequence pipeline: how many answers differ,
//     batch-invariant off (the default) and on (Options.BatchInvariant).
//
//   - streams: aggregate decode of 8 streams against 1, with
//     BatchInvariant off and on (its cost).
//
//   - decode8: only 8 streams at once (-batch-invariant), to profile:
//     perf record -g -- vlm-stall -run decode8
//
//     go run ./cmd/vlm-stall -run first,text,greedy,streams -threads 2
package main

import (
	"context"
	"flag"
	"fmt"
	"image"
	"image/color"
	"math"
	"os"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/vlm-go/vlm/gguf"
	"github.com/vlm-go/vlm/internal/testmodel"
	"github.com/vlm-go/vlm/llama"
	"github.com/vlm-go/vlm/pipeline"
	"github.com/vlm-go/vlm/sampler"
)

type config struct {
	model, proj string
	threads     int
	gen         int
	invariant   bool
	modes       []bool // BatchInvariant settings for greedy and streams
}

func main() {
	preset := flag.String("preset", testmodel.PresetSmolVLM256M, "model preset (internal/testmodel)")
	typ := flag.String("type", "q8_0", "weight type: f16 or q8_0")
	threads := flag.Int("threads", 2, "CPU threads")
	gen := flag.Int("gen", 128, "tokens per answer (greedy, streams)")
	runs := flag.String("run", "first,text,greedy,streams", "measurements, comma-separated")
	invariant := flag.Bool("batch-invariant", true, "pipeline Options.BatchInvariant for first, text and decode8")
	modes := flag.String("modes", "off,on", "BatchInvariant settings for greedy and streams")
	flag.Parse()
	ctx := context.Background()
	spec, err := testmodel.Preset(*preset)
	if err == nil {
		spec.WeightType = gguf.TypeQ8_0
		if *typ == "f16" {
			spec.WeightType = gguf.TypeF16
		}
	}
	dir := os.Getenv("VLM_TESTMODEL_CACHE")
	if err == nil && dir == "" {
		dir, err = testmodel.DefaultCacheDir()
	}
	var c config
	if err == nil {
		c.model, c.proj, err = testmodel.Ensure(ctx, dir, spec)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "vlm-stall:", err)
		os.Exit(1)
	}
	c.threads, c.gen, c.invariant = *threads, *gen, *invariant
	for _, m := range strings.Split(*modes, ",") {
		c.modes = append(c.modes, m == "on")
	}
	fmt.Printf("preset %s %s, %d threads\n", *preset, spec.WeightType, c.threads)
	for _, r := range strings.Split(*runs, ",") {
		var err error
		switch r {
		case "first":
			err = first(ctx, c)
		case "text":
			err = text(ctx, c)
		case "greedy":
			err = greedy(ctx, c)
		case "streams":
			err = streams(ctx, c)
		case "decode8":
			err = decode8(ctx, c)
		default:
			err = fmt.Errorf("unknown -run %q", r)
		}
		if err != nil {
			fmt.Fprintln(os.Stderr, "vlm-stall:", err)
			os.Exit(1)
		}
	}
}

func newPipeline(ctx context.Context, c config, parallel int, invariant bool) (*pipeline.Pipeline, error) {
	return pipeline.New(ctx, c.model, c.proj, pipeline.Options{Threads: c.threads, SequenceLength: 2048, Sequences: parallel, BatchInvariant: invariant})
}

// picture is a deterministic n×n picture; shade makes pictures differ.
func picture(n int, shade uint8) image.Image {
	img := image.NewNRGBA(image.Rect(0, 0, n, n))
	for y := range n {
		for x := range n {
			img.SetNRGBA(x, y, color.NRGBA{uint8(x * 255 / n), shade, uint8((y*255/n + int(shade)*7) % 256), 255})
		}
	}
	return img
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

// first: the first question about a new 512 px picture, Sequences 8 vs 1.
func first(ctx context.Context, c config) error {
	ttft := map[int]time.Duration{}
	for _, par := range []int{1, 8} {
		p, err := newPipeline(ctx, c, par, c.invariant)
		if err != nil {
			return err
		}
		r, err := p.Run(ctx, pipeline.Input{Text: "What is in this picture?", Images: []pipeline.Image{pipeline.ImageOf(picture(512, 40))}}, pipeline.GenerateOptions{MaxTokens: 1})
		p.Close()
		if err != nil {
			return err
		}
		ttft[par] = r.Stats.TimeToFirstToken
		fmt.Printf("first question about a new 512 px picture, Sequences %d: ttft %.0f ms (encode %.0f ms, %d chunks, %d prompt entries)\n",
			par, ms(r.Stats.TimeToFirstToken), ms(r.Stats.ImageEncodeTime), r.Stats.ImagesEncoded, r.Stats.PromptTokens)
	}
	fmt.Printf("  Sequences 8 / Sequences 1: %.3f×\n", ms(ttft[8])/ms(ttft[1]))
	return nil
}

// percentile of sorted durations (nearest rank).
func percentile(d []time.Duration, q float64) time.Duration {
	s := slices.Clone(d)
	slices.Sort(s)
	i := int(math.Ceil(q*float64(len(s)))) - 1
	return s[max(0, min(i, len(s)-1))]
}

// text: ttft of text requests sent one after another during an encode vs idle.
func text(ctx context.Context, c config) error {
	p, err := newPipeline(ctx, c, 8, c.invariant)
	if err != nil {
		return err
	}
	defer p.Close()
	opts := pipeline.GenerateOptions{MaxTokens: 4}
	textOnce := func(i int) (time.Duration, error) {
		r, err := p.Run(ctx, pipeline.Input{Text: fmt.Sprintf("Question %d: what is %d plus %d?", i, i, 2*i+1)}, opts)
		if err != nil {
			return 0, err
		}
		return r.Stats.TimeToFirstToken, nil
	}
	for i := range 3 { // warm up: the first requests fault the weights in
		if _, err := textOnce(i); err != nil {
			return err
		}
	}
	var idle []time.Duration
	for i := range 20 {
		d, err := textOnce(i)
		if err != nil {
			return err
		}
		idle = append(idle, d)
	}
	done := make(chan error, 1)
	var img *pipeline.Response
	t0 := time.Now()
	ictx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() {
		var err error
		img, err = p.Run(ictx, pipeline.Input{Text: "What is in this picture?", Images: []pipeline.Image{pipeline.ImageOf(picture(512, 90))}}, pipeline.GenerateOptions{MaxTokens: 1})
		done <- err
	}()
	time.Sleep(time.Second) // let the encode start
	var during []time.Duration
	for i := 100; ; i++ {
		stop := len(during) == 40
		if stop {
			cancel() // enough samples; the picture is not waited for
		}
		var err error
		finished := false
		if stop {
			err, finished = <-done, true
		} else {
			select {
			case err = <-done:
				finished = true
			default:
			}
		}
		if finished {
			if err != nil && !stop {
				return err
			}
			if err != nil {
				img = nil // cancelled
			}
			if len(during) == 0 {
				return fmt.Errorf("the picture was answered before any text request")
			}
			fmt.Printf("text requests (4 tokens), ttft: idle median %.0f ms p95 %.0f ms (%d); during an encode median %.0f ms p95 %.0f ms (%d)\n",
				ms(percentile(idle, 0.5)), ms(percentile(idle, 0.95)), len(idle), ms(percentile(during, 0.5)), ms(percentile(during, 0.95)), len(during))
			fmt.Printf("  p95 during / idle: %.2f×", ms(percentile(during, 0.95))/ms(percentile(idle, 0.95)))
			if img != nil {
				fmt.Printf("; the picture's ttft meanwhile %.0f ms (encode %.0f ms, %d chunks)", ms(img.Stats.TimeToFirstToken), ms(img.Stats.ImageEncodeTime), img.Stats.ImagesEncoded)
			} else {
				fmt.Printf("; the picture was still being encoded after %.0f ms (cancelled)", ms(time.Since(t0)))
			}
			fmt.Println()
			return nil
		}
		d, err := textOnce(i)
		if err != nil {
			return err
		}
		during = append(during, d)
	}
}

func prompts() []string {
	out := make([]string, 8)
	for i := range out {
		out[i] = fmt.Sprintf("Stream %d: tell a long story about the number %d.", i, i*7+3)
	}
	return out
}

func eogBan(m *llama.Model) map[llama.Token]float32 {
	bias := map[llama.Token]float32{}
	for _, t := range m.Vocab().EOGTokens() {
		bias[t] = float32(math.Inf(-1))
	}
	return bias
}

// greedy: 8 prompts alone then batched, BatchInvariant off and on.
func greedy(ctx context.Context, c config) error {
	for _, inv := range c.modes {
		p, err := newPipeline(ctx, c, 8, inv)
		if err != nil {
			return err
		}
		opts := pipeline.GenerateOptions{MaxTokens: c.gen, Sampler: sampler.Config{LogitBias: eogBan(p.Model())}}
		var alone []string
		for _, q := range prompts() {
			r, err := p.Run(ctx, pipeline.Input{Text: q}, opts)
			if err != nil {
				p.Close()
				return err
			}
			alone = append(alone, r.Text)
		}
		batched := make([]string, 8)
		errs := make([]error, 8)
		var wg sync.WaitGroup
		for i, q := range prompts() {
			wg.Add(1)
			go func() {
				defer wg.Done()
				r, err := p.Run(ctx, pipeline.Input{Text: q}, opts)
				if errs[i] = err; err == nil {
					batched[i] = r.Text
				}
			}()
		}
		wg.Wait()
		p.Close()
		diff := 0
		for i := range alone {
			if errs[i] != nil {
				return errs[i]
			}
			if alone[i] != batched[i] {
				diff++
			}
		}
		fmt.Printf("greedy, %d tokens, BatchInvariant %v: %d of 8 answers differ between alone and batched\n", c.gen, inv, diff)
	}
	return nil
}

// streamsRate runs n streams of c.gen tokens at once and returns the
// aggregate tokens per second while all decode.
func streamsRate(ctx context.Context, p *pipeline.Pipeline, c config, n int) (float64, error) {
	opts := pipeline.GenerateOptions{MaxTokens: c.gen, Sampler: sampler.Config{LogitBias: eogBan(p.Model())}}
	times := make([][]time.Time, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for tok, err := range p.Stream(ctx, pipeline.Input{Text: prompts()[i%8]}, opts).Tokens() {
				if err != nil {
					errs[i] = err
					return
				}
				if tok.ID >= 0 {
					times[i] = append(times[i], time.Now())
				}
			}
		}()
	}
	wg.Wait()
	var from, to time.Time
	for i, ts := range times {
		if errs[i] != nil {
			return 0, errs[i]
		}
		if len(ts) < 2 {
			return 0, fmt.Errorf("stream %d: %d tokens", i, len(ts))
		}
		if ts[0].After(from) {
			from = ts[0]
		}
		if to.IsZero() || ts[len(ts)-1].Before(to) {
			to = ts[len(ts)-1]
		}
	}
	count := 0
	for _, ts := range times {
		for _, t := range ts {
			if t.After(from) && !t.After(to) {
				count++
			}
		}
	}
	return float64(count) / to.Sub(from).Seconds(), nil
}

// streams: aggregate decode at 8 streams vs 1, BatchInvariant off and on.
func streams(ctx context.Context, c config) error {
	rate := map[bool][2]float64{}
	for _, inv := range c.modes {
		p, err := newPipeline(ctx, c, 8, inv)
		if err != nil {
			return err
		}
		var r [2]float64
		for k, n := range []int{1, 8} {
			if r[k], err = streamsRate(ctx, p, c, n); err != nil {
				p.Close()
				return err
			}
		}
		p.Close()
		rate[inv] = r
		fmt.Printf("decode, BatchInvariant %v: 1 stream %.1f tok/s, 8 streams %.1f tok/s together (%.2f×)\n", inv, r[0], r[1], r[1]/r[0])
	}
	if len(rate) == 2 {
		fmt.Printf("  BatchInvariant on / off: 1 stream %.3f×, 8 streams %.3f×\n", rate[true][0]/rate[false][0], rate[true][1]/rate[false][1])
	}
	return nil
}

// decode8 runs 8 streams at once, for a profiler.
func decode8(ctx context.Context, c config) error {
	p, err := newPipeline(ctx, c, 8, c.invariant)
	if err != nil {
		return err
	}
	defer p.Close()
	r, err := streamsRate(ctx, p, c, 8)
	if err != nil {
		return err
	}
	fmt.Printf("decode, BatchInvariant %v: 8 streams %.1f tok/s together\n", c.invariant, r)
	return nil
}
