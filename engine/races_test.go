package engine_test

import (
	"context"
	"math"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/vlm-go/vlm"
	"github.com/vlm-go/vlm/engine"
	"github.com/vlm-go/vlm/internal/llamaaccess"
	"github.com/vlm-go/vlm/internal/testmodel"
	"github.com/vlm-go/vlm/llama"
	"github.com/vlm-go/vlm/sampler"
)

// TestStallWakeupNotLost forces the interleaving of a lost wakeup: the
// scheduler finds the stream's buffer full, then (before it marks the
// stream stalled) the reader drains the whole buffer and waits for more.
// The stream must go on to its end, not sit until its deadline.
func TestStallWakeupNotLost(t *testing.T) {
	p := loadPair(t, testmodel.ProjectorMLP)
	e := newEngine(t, p, engine.Options{Sequences: 1, SequenceLength: 256, StreamBuffer: 2})
	full, drained := make(chan struct{}), make(chan struct{})
	var once sync.Once
	defer engine.SetStallHook(func() {
		once.Do(func() {
			close(full)
			<-drained
			// A wake-up left from earlier (Submit's) would hide a lost
			// one: the reader's is the only one to come.
			engine.DrainWake(e)
		})
	})()

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	s, err := e.Submit(ctx, engine.Request{Tokens: textTokens(t, p, 8, 1), MaxTokens: 10, Sampler: samplerIgnoreEOG(p)})
	require.NoError(t, err)
	<-full // the buffer holds 2 tokens; the scheduler is between its check and marking the stream stalled
	n := 0
	for _, err := range s.Tokens() {
		require.NoError(t, err, "the stream stalled until its deadline after %d tokens", n)
		if n++; n == 2 {
			close(drained) // the buffer is empty and this reader saw no stall
		}
	}
	res := s.Result()
	require.NoError(t, res.Err)
	assert.Equal(t, llama.StopMaxTokens, res.Reason)
	assert.Len(t, res.Tokens, 10)
}

// TestBreakResultFinalAtDone: once Done is closed Result does not change,
// also when the reader breaks out of Tokens (run with -race: another
// goroutine reads Result as soon as Done is closed).
func TestBreakResultFinalAtDone(t *testing.T) {
	p := loadPair(t, testmodel.ProjectorMLP)
	e := newEngine(t, p, engine.Options{Sequences: 1, SequenceLength: 256})
	s, err := e.Submit(context.Background(), engine.Request{Tokens: textTokens(t, p, 8, 2), MaxTokens: 100, Sampler: samplerIgnoreEOG(p)})
	require.NoError(t, err)
	atDone := make(chan engine.Result, 1)
	go func() {
		<-s.Done()
		atDone <- s.Result()
	}()
	n := 0
	for _, err := range s.Tokens() {
		require.NoError(t, err)
		if n++; n == 3 {
			break
		}
	}
	final := s.Result()
	seen := <-atDone
	assert.Equal(t, llama.StopBreak, final.Reason)
	assert.Len(t, final.Tokens, 3, "the result is what the reader took")
	assert.Equal(t, final.Reason, seen.Reason, "Result read when Done closed")
	assert.Equal(t, final.Tokens, seen.Tokens, "Result read when Done closed")
	assert.Equal(t, final.Text, seen.Text, "Result read when Done closed")
}

// TestPerfDuringDecode: the performance counters are read while requests
// are decoded; no request fails (llama.ErrConcurrentUse) and the KV
// cache's accounting stays right (later requests run).
func TestPerfDuringDecode(t *testing.T) {
	p := loadPair(t, testmodel.ProjectorMLP)
	e := newEngine(t, p, engine.Options{Sequences: 2, SequenceLength: 128, ContextSize: 160})
	stop := make(chan struct{})
	var reads sync.WaitGroup
	var perfErr error
	var evals int
	reads.Go(func() {
		for {
			select {
			case <-stop:
				return
			default:
			}
			pf, err := enginePerf(e)
			if err != nil {
				perfErr = err
				return
			}
			evals = pf.PromptTokens + pf.EvalTokens
		}
	})
	for round := range 6 {
		var wg sync.WaitGroup
		for i := range 2 {
			s, err := e.Submit(context.Background(), engine.Request{Tokens: textTokens(t, p, 16, 10*round+i), MaxTokens: 40, Sampler: samplerIgnoreEOG(p)})
			require.NoError(t, err)
			wg.Go(func() {
				res := s.Wait()
				assert.NoError(t, res.Err, "round %d request %d", round, i)
				assert.Len(t, res.Tokens, 40, "round %d request %d", round, i)
			})
		}
		wg.Wait()
	}
	close(stop)
	reads.Wait()
	require.NoError(t, perfErr)
	pf, err := enginePerf(e)
	require.NoError(t, err)
	assert.Positive(t, pf.PromptTokens+pf.EvalTokens)
	t.Logf("perf %+v (last concurrent read: %d tokens)", pf, evals)
}

// TestGrammarCloseDoesNotStallScheduler: a grammar sampler holds the
// model; closing it when its request ends must not wait for the model's
// readers (here: one holding it, as a long tokenization would), nor stall
// the other streams meanwhile.
func TestGrammarCloseDoesNotStallScheduler(t *testing.T) {
	p := loadPair(t, testmodel.ProjectorMLP)
	e := newEngine(t, p, engine.Options{Sequences: 2, SequenceLength: 256, StreamBuffer: 4})
	ban := map[llama.Token]float32{}
	for _, tok := range p.model.Vocab().EOGTokens() {
		ban[tok] = float32(math.Inf(-1))
	}
	gctx, gcancel := context.WithCancel(context.Background())
	defer gcancel()
	g, err := e.Submit(gctx, engine.Request{Tokens: textTokens(t, p, 8, 3), MaxTokens: 200,
		Sampler: sampler.Config{Grammar: `root ::= [ a-z]*`, LogitBias: ban}})
	require.NoError(t, err)
	other, err := e.Submit(context.Background(), engine.Request{Tokens: textTokens(t, p, 8, 4), MaxTokens: 200, Sampler: samplerIgnoreEOG(p)})
	require.NoError(t, err)
	next, stopOther := tokensOf(other)
	defer stopOther()
	<-next // both run

	held, release := make(chan struct{}), make(chan struct{})
	var holder sync.WaitGroup
	holder.Go(func() {
		_ = llamaaccess.ModelNative(p.model, func(*vlm.LlamaModel) error { close(held); <-release; return nil })
	})
	<-held
	defer holder.Wait()
	defer close(release)

	gcancel() // the grammar request ends while a reader holds the model
	select {
	case <-g.Done():
	case <-time.After(10 * time.Second):
		t.Fatal("the grammar request did not end while the model was read: its sampler's Close waits for the model's write lock on the scheduler")
	}
	for i := range 8 {
		select {
		case <-next:
		case <-time.After(10 * time.Second):
			t.Fatalf("the other stream stopped after %d tokens while the model was read", i)
		}
	}
}

// tokensOf reads s on a goroutine and signals each token; stop cancels it.
func tokensOf(s *engine.Stream) (<-chan struct{}, func()) {
	next := make(chan struct{})
	quit := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		for _, err := range s.Tokens() {
			if err != nil {
				return
			}
			select {
			case next <- struct{}{}:
			case <-quit:
				return
			}
		}
	}()
	return next, func() { close(quit); s.Cancel(); <-done }
}
