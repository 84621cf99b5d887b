package main

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/vlm-go/vlm/gguf"
	"github.com/vlm-go/vlm/llama"
	"github.com/vlm-go/vlm/pipeline"
	"github.com/vlm-go/vlm/sampler"
)

// streamsOptions configure the -streams benchmark.
type streamsOptions struct {
	preset   string
	typ      gguf.TensorType
	threads  int
	counts   []int // concurrent streams to measure
	gen      int   // tokens per stream
	loaded   int   // streams decoding while a new request's TTFT is measured
	cacheDir string
}

// runStreams measures the batching engine through the pipeline (the
// user's path: goroutines calling Stream): the aggregate decode speed of N
// concurrent streams and its ratio to one stream; the time to first token
// of a new request with a new picture while o.loaded streams decode, and
// its ratio to the same kind of request on an idle pipeline; and the time
// to first token of a second question about the same picture.
func runStreams(o streamsOptions) error {
	ctx := context.Background()
	mp, pp, err := ensurePreset(ctx, o.preset, o.typ, true, o.cacheDir) // one encoder tile per picture
	if err != nil {
		return err
	}
	fmt.Printf("preset %s %s, %d threads, %d tokens per stream\n", o.preset, o.typ, o.threads, o.gen)
	fmt.Printf("%8s %14s %16s %10s %16s %12s\n", "streams", "decode tok/s", "per stream tok/s", "× 1 stream", "raw decode tok/s", "vlm / raw")
	var base float64
	for _, n := range o.counts {
		rate, err := aggregateDecode(ctx, mp, pp, o, n)
		if err != nil {
			return err
		}
		raw, err := rawBatchedDecode(ctx, mp, o, n)
		if err != nil {
			return err
		}
		if base == 0 {
			base = rate
		}
		fmt.Printf("%8d %14.1f %16.1f %9.2f× %16.1f %11.2f×\n", n, rate, rate/float64(n), rate/base, raw, rate/raw)
	}
	fmt.Println("(raw: the same steps with llama directly, no engine: one batch of n tokens per llama_decode, each sampled greedily)")
	return ttftUnderLoad(ctx, mp, pp, o)
}

// newBenchPipeline loads a pipeline with n sequences.
func newBenchPipeline(ctx context.Context, mp, pp string, o streamsOptions, n int) (*pipeline.Pipeline, pipeline.GenerateOptions, error) {
	p, err := pipeline.New(ctx, mp, pp, pipeline.Options{Threads: o.threads, SequenceLength: 1024, Sequences: n})
	if err != nil {
		return nil, pipeline.GenerateOptions{}, err
	}
	gen := pipeline.GenerateOptions{MaxTokens: o.gen, Sampler: sampler.Config{LogitBias: eogBan(p.Model())}}
	return p, gen, nil
}

// aggregateDecode runs n streams of o.gen tokens at once and returns the
// tokens per second of all of them together while all were decoding (from
// the last stream's first token to the first stream's end).
func aggregateDecode(ctx context.Context, mp, pp string, o streamsOptions, n int) (float64, error) {
	p, gen, err := newBenchPipeline(ctx, mp, pp, o, n)
	if err != nil {
		return 0, err
	}
	defer p.Close()
	return aggregateOn(ctx, p, gen, n)
}

// aggregateOn is aggregateDecode on a pipeline of at least n sequences.
func aggregateOn(ctx context.Context, p *pipeline.Pipeline, gen pipeline.GenerateOptions, n int) (float64, error) {
	times := make([][]time.Time, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			in := pipeline.Input{Text: fmt.Sprintf("Stream %d: tell a long story about the number %d.", i, i*7+3)}
			for tok, err := range p.Stream(ctx, in, gen).Tokens() {
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
			return 0, fmt.Errorf("stream %d produced %d tokens", i, len(ts))
		}
		if ts[0].After(from) {
			from = ts[0]
		}
		if end := ts[len(ts)-1]; to.IsZero() || end.Before(to) {
			to = end
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
	if !to.After(from) || count == 0 {
		return 0, fmt.Errorf("%d streams: no window where all decode (use more -gen)", n)
	}
	return float64(count) / to.Sub(from).Seconds(), nil
}

// rawBatchedDecode is the ceiling of aggregateDecode: n sequences of one
// context stepped with llama directly (a batch of one token per sequence,
// one llama_decode, each row sampled by its own greedy sampler), in tokens
// per second.
func rawBatchedDecode(ctx context.Context, mp string, o streamsOptions, n int) (float64, error) {
	m, err := llama.Load(ctx, mp, llama.LoadOptions{})
	if err != nil {
		return 0, err
	}
	defer m.Close()
	x, err := m.NewContext(llama.ContextOptions{ContextSize: n * 1024, Sequences: n, Threads: o.threads, FlashAttn: llama.FlashAttentionOff})
	if err != nil {
		return 0, err
	}
	defer x.Close()
	b, err := m.NewBatch(512, 1)
	if err != nil {
		return 0, err
	}
	defer b.Close()
	cfg := sampler.Config{LogitBias: eogBan(m)}
	smps := make([]*sampler.Sampler, n)
	last := make([]llama.Token, n)
	pos := make([]int32, n)
	for i := range n {
		if smps[i], err = sampler.New(m, cfg); err != nil {
			return 0, err
		}
		defer smps[i].Close()
		toks, err := m.Vocab().Tokenize(fmt.Sprintf("Stream %d: tell a long story about the number %d.", i, i*7+3), true, false)
		if err != nil {
			return 0, err
		}
		b.Clear()
		if err := b.AddSequence(toks, 0, int32(i), true); err != nil {
			return 0, err
		}
		if err := x.Decode(ctx, b); err != nil {
			return 0, err
		}
		if last[i], err = smps[i].Sample(x, -1); err != nil {
			return 0, err
		}
		pos[i] = int32(len(toks))
	}
	t0 := time.Now()
	for range o.gen {
		b.Clear()
		for i := range n {
			if err := b.Add(last[i], pos[i], true, int32(i)); err != nil {
				return 0, err
			}
			pos[i]++
		}
		if err := x.Decode(ctx, b); err != nil {
			return 0, err
		}
		for i := range n {
			if last[i], err = smps[i].Sample(x, i); err != nil {
				return 0, err
			}
		}
	}
	return float64(n*o.gen) / time.Since(t0).Seconds(), nil
}

// ttftUnderLoad measures the time to first token of a new request with a
// new picture on an idle pipeline and while o.loaded streams decode, and
// of a second question about the same picture.
func ttftUnderLoad(ctx context.Context, mp, pp string, o streamsOptions) error {
	p, gen, err := newBenchPipeline(ctx, mp, pp, o, o.loaded+1)
	if err != nil {
		return err
	}
	defer p.Close()
	one := pipeline.GenerateOptions{MaxTokens: 1}
	ask := func(q string, shade uint8) (pipeline.Stats, error) {
		r, err := p.Run(ctx, pipeline.Input{Text: q, Images: []pipeline.Image{pipeline.ImageOf(pictureSeeded(512, shade))}}, one)
		if err != nil {
			return pipeline.Stats{}, err
		}
		return r.Stats, nil
	}
	idle, err := ask("What is in this picture?", 11)
	if err != nil {
		return err
	}
	again, err := ask("Which colours does it have?", 11)
	if err != nil {
		return err
	}

	// Four questions at once about one new picture, against one alone.
	sixteen := gen
	sixteen.MaxTokens = 16
	runOne := func(q string, shade uint8) error {
		_, err := p.Run(ctx, pipeline.Input{Text: q, Images: []pipeline.Image{pipeline.ImageOf(pictureSeeded(512, shade))}}, sixteen)
		return err
	}
	t1 := time.Now()
	if err := runOne("Describe this picture.", 150); err != nil {
		return err
	}
	aloneTime := time.Since(t1)
	t1 = time.Now()
	four := make([]error, 4)
	var fw sync.WaitGroup
	for i := range 4 {
		fw.Add(1)
		go func() { defer fw.Done(); four[i] = runOne(fmt.Sprintf("Question %d: what do you see?", i), 151) }()
	}
	fw.Wait()
	fourTime := time.Since(t1)
	for _, err := range four {
		if err != nil {
			return err
		}
	}

	// Start the load and wait until every stream decodes.
	lctx, stop := context.WithCancel(ctx)
	defer stop()
	long := gen
	long.MaxTokens = -1
	var started, wg sync.WaitGroup
	var mu sync.Mutex
	var during []time.Time
	var measuring bool
	for i := range o.loaded {
		started.Add(1)
		wg.Add(1)
		go func() {
			defer wg.Done()
			first := true
			in := pipeline.Input{Text: fmt.Sprintf("Stream %d: tell a long story.", i)}
			for tok, err := range p.Stream(lctx, in, long).Tokens() {
				if err != nil {
					break
				}
				if first {
					started.Done()
					first = false
				}
				mu.Lock()
				if measuring && tok.ID >= 0 {
					during = append(during, time.Now())
				}
				mu.Unlock()
			}
			if first {
				started.Done()
			}
		}()
	}
	started.Wait()
	time.Sleep(500 * time.Millisecond)
	mu.Lock()
	measuring = true
	mu.Unlock()
	t0 := time.Now()
	loaded, err := ask("What is in this picture?", 99)
	elapsed := time.Since(t0)
	mu.Lock()
	measuring = false
	nDuring := len(during)
	mu.Unlock()
	stop()
	wg.Wait()
	if err != nil {
		return err
	}
	ms := func(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
	fmt.Printf("\nnew request with a new picture (encode %.0f ms idle, %.0f ms loaded):\n", ms(idle.ImageEncodeTime), ms(loaded.ImageEncodeTime))
	fmt.Printf("  ttft idle                      %9.1f ms\n", ms(idle.TimeToFirstToken))
	fmt.Printf("  ttft while %2d streams decode   %9.1f ms  (%.2f× idle)\n", o.loaded, ms(loaded.TimeToFirstToken), ms(loaded.TimeToFirstToken)/ms(idle.TimeToFirstToken))
	fmt.Printf("  the %d streams meanwhile        %9.1f tok/s together\n", o.loaded, float64(nDuring)/elapsed.Seconds())
	fmt.Printf("four questions at once about one new picture, 16 tokens each: %.0f ms (one question alone %.0f ms: %.2f×)\n",
		ms(fourTime), ms(aloneTime), ms(fourTime)/ms(aloneTime))
	fmt.Printf("same picture, second question:\n")
	fmt.Printf("  ttft                           %9.1f ms  (%.0f× faster than the first; %d of %d prompt entries from the KV cache)\n",
		ms(again.TimeToFirstToken), ms(idle.TimeToFirstToken)/ms(again.TimeToFirstToken), again.CachedTokens, again.PromptTokens)
	return nil
}

// sortedInts parses "1,4,8" into sorted ints.
func sortedInts(s string) ([]int, error) {
	var out []int
	for _, f := range strings.Split(s, ",") {
		var n int
		if _, err := fmt.Sscan(f, &n); err != nil || n <= 0 {
			return nil, fmt.Errorf("-streams %q: want positive counts like 1,4,8,16", s)
		}
		out = append(out, n)
	}
	sort.Ints(out)
	return out, nil
}
