package engine_test

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/vlm-go/vlm/engine"
	"github.com/vlm-go/vlm/internal/testmodel"
	"github.com/vlm-go/vlm/llama"
	"github.com/vlm-go/vlm/mtmd"
	"github.com/vlm-go/vlm/sampler"
)

// textTokens is a text-only prompt of n tokens.
func textTokens(t testing.TB, p pair, n int, seed int) []llama.Token {
	t.Helper()
	toks, err := p.model.Vocab().Tokenize(fmt.Sprintf("prompt %d:", seed), true, false)
	require.NoError(t, err)
	for len(toks) < n {
		toks = append(toks, toks[len(toks)%max(1, len(toks)-1)+1])
	}
	return toks[:n]
}

func TestSubmitErrors(t *testing.T) {
	p := loadPair(t, testmodel.ProjectorMLP)
	e := newEngine(t, p, engine.Options{Sequences: 2, SequenceLength: 64})
	ctx := context.Background()

	_, err := e.Submit(ctx, engine.Request{})
	assert.ErrorIs(t, err, engine.ErrInvalidRequest)
	_, err = e.Submit(ctx, engine.Request{Tokens: textTokens(t, p, 64, 1)})
	assert.ErrorIs(t, err, llama.ErrPromptTooLong, "a prompt that can never fit fails at once")
	_, err = e.Submit(ctx, engine.Request{Tokens: textTokens(t, p, 8, 1), SequenceLength: 65})
	assert.ErrorIs(t, err, engine.ErrInvalidRequest)
	_, err = e.Submit(ctx, engine.Request{Tokens: []llama.Token{1, 1 << 20}})
	assert.ErrorIs(t, err, llama.ErrInvalidArgument)
	// A prompt ending with an image.
	ch, err := p.proj.Tokenize(ctx, p.proj.Marker(), []*mtmd.Image{picture(24, 24, 1)}, mtmd.TokenizeOptions{})
	require.NoError(t, err)
	_, err = e.Submit(ctx, engine.Request{Chunks: ch})
	assert.ErrorIs(t, err, engine.ErrInvalidRequest)
	assert.Contains(t, err.Error(), "ends with an image")

	require.NoError(t, e.Close())
	_, err = e.Submit(ctx, engine.Request{Tokens: textTokens(t, p, 8, 1)})
	assert.ErrorIs(t, err, engine.ErrClosed)
	require.NoError(t, e.Close(), "Close is idempotent")
}

// TestOverloadedAndCloseEndsWaiters: beyond MaxWaiting, Submit says
// ErrOverloaded; Close ends running and waiting requests with ErrClosed.
func TestOverloadedAndCloseEndsWaiters(t *testing.T) {
	p := loadPair(t, testmodel.ProjectorMLP)
	e := newEngine(t, p, engine.Options{Sequences: 1, SequenceLength: 256, MaxWaiting: 2, StreamBuffer: 1})
	ctx := context.Background()
	var streams []*engine.Stream
	var overloaded error
	for i := 0; i < 8 && overloaded == nil; i++ {
		s, err := e.Submit(ctx, engine.Request{Tokens: textTokens(t, p, 8, i), MaxTokens: 0})
		if err != nil {
			overloaded = err
			break
		}
		streams = append(streams, s)
	}
	require.ErrorIs(t, overloaded, engine.ErrOverloaded)
	assert.LessOrEqual(t, len(streams), 3, "one running and two waiting")
	assert.Positive(t, e.Stats().Overloaded)
	// Nobody reads: the running request stalls on its full buffer.
	require.NoError(t, e.Close())
	for i, s := range streams {
		res := s.Wait()
		assert.ErrorIs(t, res.Err, engine.ErrClosed, "stream %d", i)
	}
}

// TestSlowReaderDoesNotBlockOthers: a stream nobody reads pauses its own
// sequence only.
func TestSlowReaderDoesNotBlockOthers(t *testing.T) {
	p := loadPair(t, testmodel.ProjectorMLP)
	e := newEngine(t, p, engine.Options{Sequences: 2, SequenceLength: 256, StreamBuffer: 2})
	ctx := context.Background()
	stuck, err := e.Submit(ctx, engine.Request{Tokens: textTokens(t, p, 8, 1), MaxTokens: 100})
	require.NoError(t, err)
	other, err := e.Submit(ctx, engine.Request{Tokens: textTokens(t, p, 8, 2), MaxTokens: 40})
	require.NoError(t, err)
	res := other.Wait()
	require.NoError(t, res.Err)
	assert.Len(t, res.Tokens, 40)
	select {
	case <-stuck.Done():
		t.Fatal("the unread stream ran to its end past its buffer")
	default:
	}
	// Reading it now lets it finish.
	res = stuck.Wait()
	require.NoError(t, res.Err)
	assert.Len(t, res.Tokens, 100)
}

// TestCancelAndBreak: cancelling a request's context ends it with
// ErrCancelled; breaking out of Tokens ends it with StopBreak; the other
// sequence is unaffected and the engine goes on.
func TestCancelAndBreak(t *testing.T) {
	p := loadPair(t, testmodel.ProjectorMLP)
	e := newEngine(t, p, engine.Options{Sequences: 2, SequenceLength: 256})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	s, err := e.Submit(ctx, engine.Request{Tokens: textTokens(t, p, 8, 1)})
	require.NoError(t, err)
	n := 0
	var last error
	for _, err := range s.Tokens() {
		if err != nil {
			last = err
			break
		}
		if n++; n == 3 {
			cancel()
		}
	}
	require.ErrorIs(t, last, llama.ErrCancelled)
	assert.Equal(t, llama.StopCancelled, s.Result().Reason)

	s, err = e.Submit(context.Background(), engine.Request{Tokens: textTokens(t, p, 8, 2)})
	require.NoError(t, err)
	n = 0
	for _, err := range s.Tokens() {
		require.NoError(t, err)
		if n++; n == 5 {
			break
		}
	}
	res := s.Result()
	assert.NoError(t, res.Err)
	assert.Equal(t, llama.StopBreak, res.Reason)
	assert.Len(t, res.Tokens, 5)

	// The engine still answers.
	s, err = e.Submit(context.Background(), engine.Request{Tokens: textTokens(t, p, 8, 3), MaxTokens: 4})
	require.NoError(t, err)
	res = s.Wait()
	require.NoError(t, res.Err)
	assert.Equal(t, llama.StopMaxTokens, res.Reason)
}

// TestSequenceFullIsLength: an answer that fills its sequence ends with
// StopCacheFull, not an error; a small shared KV cache makes requests wait
// for room instead of failing.
func TestSequenceFullIsLength(t *testing.T) {
	p := loadPair(t, testmodel.ProjectorMLP)
	e := newEngine(t, p, engine.Options{Sequences: 4, SequenceLength: 48, ContextSize: 96})
	var wg sync.WaitGroup
	results := make([]engine.Result, 6)
	for i := range results {
		s, err := e.Submit(context.Background(), engine.Request{Tokens: textTokens(t, p, 16, i), Sampler: samplerIgnoreEOG(p)})
		require.NoError(t, err)
		wg.Add(1)
		go func() { defer wg.Done(); results[i] = s.Wait() }()
	}
	wg.Wait()
	for i, r := range results {
		require.NoError(t, r.Err, "request %d", i)
		assert.Equal(t, llama.StopCacheFull, r.Reason, "request %d", i)
		assert.Len(t, r.Tokens, 48-16, "request %d fills its sequence", i)
	}
}

// TestStress: 16 goroutines send mixed requests (pictures, long prompts,
// cancels mid-stream, readers that stop, readers that are slow); every
// request ends with its answer or its typed error, and goroutines return
// to their baseline after Close.
func TestStress(t *testing.T) {
	p := loadPair(t, testmodel.ProjectorIdefics3)
	before := runtime.NumGoroutine()
	stress(t, p, before)
	// A second round on a new engine: native memory comes back (the
	// first round warmed the allocator and the image cache).
	rss1 := rssBytes(t)
	stress(t, p, before)
	rss2 := rssBytes(t)
	t.Logf("RSS after round 1 %.1f MiB, after round 2 %.1f MiB", float64(rss1)/(1<<20), float64(rss2)/(1<<20))
	assert.Less(t, rss2, rss1+48<<20, "RSS grew by %d MiB in a round", (rss2-rss1)>>20)
}

// stress is one round of TestStress on a new engine.
func stress(t *testing.T, p pair, before int) {
	e, err := engine.New(p.model, p.proj, engine.Options{Sequences: 4, SequenceLength: 256, Threads: 1, MaxWaiting: -1, StreamBuffer: 4, FlashAttn: llama.FlashAttentionOff})
	require.NoError(t, err)
	var wg sync.WaitGroup
	var mu sync.Mutex
	kinds := map[string]int{}
	count := func(k string) { mu.Lock(); kinds[k]++; mu.Unlock() }
	for g := range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(uint64(g), 3))
			for i := range 4 {
				ctx, cancel := context.WithCancel(context.Background())
				req := engine.Request{MaxTokens: 8 + rng.IntN(24)}
				switch rng.IntN(3) {
				case 0:
					req.Tokens = textTokens(t, p, 200+rng.IntN(100), g*10+i) // some too long
				default:
					req.Chunks = p.tokenize(t, ask{img: picture(24+8*rng.IntN(3), 32, uint8(rng.IntN(4))), question: fmt.Sprint("q", g, i)})
				}
				s, err := e.Submit(ctx, req)
				if err != nil {
					require.ErrorIs(t, err, llama.ErrPromptTooLong)
					count("too long")
					cancel()
					continue
				}
				mode := rng.IntN(4)
				n := 0
				var last error
				for _, err := range s.Tokens() {
					if err != nil {
						last = err
						break
					}
					n++
					if mode == 1 && n == 2 {
						cancel()
					}
					if mode == 2 && n == 3 {
						break
					}
					if mode == 3 {
						time.Sleep(time.Millisecond)
					}
				}
				res := s.Result()
				switch {
				case last != nil:
					require.ErrorIs(t, last, llama.ErrCancelled)
					count("cancelled")
				case mode == 2 && res.Reason == llama.StopBreak:
					count("break")
				default:
					require.NoError(t, res.Err)
					require.Contains(t, []llama.StopReason{llama.StopEOG, llama.StopMaxTokens, llama.StopCacheFull}, res.Reason)
					count("answer")
				}
				cancel()
			}
		}()
	}
	wg.Wait()
	t.Logf("outcomes: %v; %+v", kinds, e.Stats())
	assert.Positive(t, kinds["answer"])
	st := e.Stats()
	assert.Zero(t, st.Active)
	assert.Zero(t, st.Waiting)
	require.NoError(t, e.Close())
	deadline := time.Now().Add(5 * time.Second)
	for runtime.NumGoroutine() > before && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if runtime.NumGoroutine() > before {
		buf := make([]byte, 1<<16)
		t.Fatalf("goroutines: %d before, %d after:\n%s", before, runtime.NumGoroutine(), buf[:runtime.Stack(buf, true)])
	}
}

// rssBytes is the process's resident memory after a GC (Linux).
func rssBytes(t *testing.T) int64 {
	runtime.GC()
	runtime.GC()
	data, err := os.ReadFile("/proc/self/statm")
	if err != nil {
		t.Skipf("no /proc/self/statm on this system (%v): the RSS check needs Linux", err)
	}
	var size, res int64
	_, err = fmt.Sscan(string(data), &size, &res)
	require.NoError(t, err)
	return res * int64(os.Getpagesize())
}

// samplerIgnoreEOG is greedy with every end-of-generation token banned.
func samplerIgnoreEOG(p pair) sampler.Config {
	bias := map[llama.Token]float32{}
	for _, t := range p.model.Vocab().EOGTokens() {
		bias[t] = float32(math.Inf(-1))
	}
	return sampler.Config{LogitBias: bias}
}

// TestMRoPECellsAreCounted: an M-RoPE picture takes more KV cells (one per
// embedding) than positions; admission counts cells, so a prompt whose
// positions fit a sequence but whose cells do not fit the cache is refused
// at once instead of failing mid-decode.
func TestMRoPECellsAreCounted(t *testing.T) {
	p := loadPair(t, testmodel.ProjectorQwen2VL)
	require.True(t, p.proj.UsesMRoPE())
	e := newEngine(t, p, engine.Options{Sequences: 1, SequenceLength: 512})
	big := p.tokenize(t, ask{img: picture(640, 480, 3), question: "What is it?"})
	entries, positions := big.NTokens(), big.NPos()
	require.Greater(t, entries, 512, "the picture's embeddings exceed the cache")
	require.Less(t, positions, 512, "its positions fit a sequence")
	_, err := e.Submit(context.Background(), engine.Request{Chunks: big, MaxTokens: 4})
	require.ErrorIs(t, err, llama.ErrPromptTooLong)
	assert.Contains(t, err.Error(), "KV cells")

	small := p.tokenize(t, ask{img: picture(64, 64, 3), question: "What is it?"})
	s, err := e.Submit(context.Background(), engine.Request{Chunks: small, MaxTokens: 4})
	require.NoError(t, err)
	require.NoError(t, s.Wait().Err)
}
