package pipeline_test

import (
	"context"
	"errors"
	"os"
	"runtime"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/vlm-go/vlm/gguf"
	"github.com/vlm-go/vlm/internal/testmodel"
	"github.com/vlm-go/vlm/llama"
	"github.com/vlm-go/vlm/pipeline"
	"github.com/vlm-go/vlm/sampler"
)

// childPipeline loads the tiny pair in ChildProcess mode.
func childPipeline(t testing.TB, mp, pp string, opts pipeline.Options) *pipeline.Pipeline {
	t.Helper()
	opts.Process = pipeline.ChildProcess
	if opts.Threads == 0 {
		opts.Threads = 1
	}
	if opts.SequenceLength == 0 {
		opts.SequenceLength = 1024
	}
	p, err := pipeline.New(context.Background(), mp, pp, opts)
	require.NoError(t, err)
	t.Cleanup(func() { p.Close() })
	return p
}

// TestChildProcessAnswersAsInProcess: the same requests give the same
// tokens in both modes — Run with and without an image, Stream, a
// session's turns — and the statistics, cancellation and errors cross.
func TestChildProcessAnswersAsInProcess(t *testing.T) {
	mp, pp := testmodel.TinyPair(t, testmodel.ProjectorIdefics3, gguf.TypeF16)
	ctx := context.Background()
	in, err := pipeline.New(ctx, mp, pp, pipeline.Options{Threads: 1, SequenceLength: 1024, Sequences: 2})
	require.NoError(t, err)
	defer in.Close()
	cp := childPipeline(t, mp, pp, pipeline.Options{Sequences: 2})
	assert.Nil(t, cp.Model(), "the model lives in the child")
	assert.Equal(t, in.ModelPath(), cp.ModelPath())
	assert.Equal(t, in.Capacity(), cp.Capacity())
	require.NoError(t, cp.Ready())

	img := pipeline.ImageOf(picture(40, 30, 80))
	for _, input := range []pipeline.Input{
		{Text: "Hello there"},
		{Text: "What is in the picture?", Images: []pipeline.Image{img}},
		{Prompt: "Once upon a time"},
	} {
		want, err := in.Run(ctx, input, pipeline.GenerateOptions{MaxTokens: 12})
		require.NoError(t, err)
		var progress [][2]int
		got, err := cp.Run(ctx, input, pipeline.GenerateOptions{MaxTokens: 12, ImageProgress: func(d, n int) { progress = append(progress, [2]int{d, n}) }})
		require.NoError(t, err)
		assert.Equal(t, want.Tokens, got.Tokens)
		assert.Equal(t, want.Text, got.Text)
		assert.Equal(t, want.Prompt, got.Prompt)
		assert.Equal(t, want.StopReason, got.StopReason)
		assert.Equal(t, want.Stats.PromptTokens, got.Stats.PromptTokens)
		assert.Equal(t, want.Stats.ImageTokens, got.Stats.ImageTokens)
		assert.Positive(t, got.Stats.TimeToFirstToken)
		if len(input.Images) > 0 {
			assert.NotEmpty(t, progress, "image progress crosses")
		}
	}
	st := cp.EngineStats()
	assert.EqualValues(t, 3, st.Completed)
	assert.EqualValues(t, 1, cp.ImageCacheStats().Misses)

	// Stream, and a break that keeps what was read.
	st1 := cp.Stream(ctx, pipeline.Input{Text: "Count"}, pipeline.GenerateOptions{MaxTokens: 20})
	n := 0
	for _, err := range st1.Tokens() {
		require.NoError(t, err)
		if n++; n == 3 {
			break
		}
	}
	assert.Equal(t, llama.StopBreak, st1.Response().StopReason)
	assert.Len(t, st1.Response().Tokens, 3)

	// Sessions: the history lives here, turns answer as in process.
	sIn, err := in.NewSession(pipeline.SessionOptions{System: "Be brief."})
	require.NoError(t, err)
	sCp, err := cp.NewSession(pipeline.SessionOptions{System: "Be brief."})
	require.NoError(t, err)
	for _, q := range []pipeline.Input{{Text: "Look", Images: []pipeline.Image{img}}, {Text: "And now?"}} {
		a, err := sIn.Send(ctx, q, pipeline.GenerateOptions{MaxTokens: 8})
		require.NoError(t, err)
		b, err := sCp.Send(ctx, q, pipeline.GenerateOptions{MaxTokens: 8})
		require.NoError(t, err)
		assert.Equal(t, a.Tokens, b.Tokens)
	}
	assert.Equal(t, sIn.History(), sCp.History())

	// Errors keep their sentinels.
	_, err = cp.Run(ctx, pipeline.Input{Text: "x"}, pipeline.GenerateOptions{Sampler: sampler.Config{Grammar: "root ::= ("}})
	assert.ErrorIs(t, err, sampler.ErrInvalidConfig)
	long := make([]byte, 6000)
	for i := range long {
		long[i] = 'a' + byte(i%26)
	}
	_, err = cp.Run(ctx, pipeline.Input{Prompt: string(long)}, pipeline.GenerateOptions{MaxTokens: 4})
	assert.ErrorIs(t, err, llama.ErrPromptTooLong)

	// Cancellation reaches the child.
	cctx, cancel := context.WithCancel(ctx)
	st2 := cp.Stream(cctx, pipeline.Input{Text: "Go on"}, pipeline.GenerateOptions{Sampler: sampler.Config{LogitBias: eogBan(t, in)}})
	n = 0
	var last error
	for _, err := range st2.Tokens() {
		if err != nil {
			last = err
			break
		}
		if n++; n == 2 {
			cancel()
		}
	}
	require.ErrorIs(t, last, llama.ErrCancelled)
	require.ErrorIs(t, last, context.Canceled)
	cancel()
}

// openFDs counts this process's open file descriptors.
func openFDs(t testing.TB) int {
	ents, err := os.ReadDir("/proc/self/fd")
	require.NoError(t, err)
	return len(ents)
}

// settle waits for the goroutines and descriptors to come back to at most
// the baseline (they end asynchronously), then checks them.
func settle(t *testing.T, goroutines, fds int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) && (runtime.NumGoroutine() > goroutines || openFDs(t) > fds) {
		time.Sleep(20 * time.Millisecond)
	}
	if !assert.LessOrEqual(t, runtime.NumGoroutine(), goroutines, "goroutines leaked") {
		buf := make([]byte, 1<<20)
		t.Logf("%s", buf[:runtime.Stack(buf, true)])
	}
	assert.LessOrEqual(t, openFDs(t), fds, "file descriptors leaked")
}

// TestChildProcessCrash: 8 answers stream, the child dies (SIGKILL from
// outside, a segfault mid-decode, an abort mid-encode, a hang): every one
// ends with a *CrashError at once, the next request succeeds once the
// child has restarted, a session goes on, and nothing leaks here.
func TestChildProcessCrash(t *testing.T) {
	mp, pp := testmodel.TinyPair(t, testmodel.ProjectorIdefics3, gguf.TypeF16)
	ctx := context.Background()
	ref, err := pipeline.New(ctx, mp, pp, pipeline.Options{Threads: 1, SequenceLength: 512})
	require.NoError(t, err)
	ban := eogBan(t, ref)
	ref.Close()
	sup := pipeline.Supervisor{HangTimeout: 3 * time.Second, RestartBackoff: 50 * time.Millisecond}
	// One pipeline first: the process's one-time set-up (budgets, pools)
	// is not a leak.
	warm := childPipeline(t, mp, pp, pipeline.Options{Supervisor: sup})
	_, err = warm.Run(ctx, pipeline.Input{Text: "Hi"}, pipeline.GenerateOptions{MaxTokens: 2})
	require.NoError(t, err)
	warm.Close()

	for _, tc := range []struct {
		name   string
		signal syscall.Signal
		hung   bool
	}{
		{"sigkill", syscall.SIGKILL, false},
		{"segv-decode", syscall.SIGSEGV, false},
		{"abort-encode", syscall.SIGABRT, false},
		{"hang-decode", syscall.SIGKILL, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			goroutines, fds := runtime.NumGoroutine(), openFDs(t)
			p, err := pipeline.New(ctx, mp, pp, pipeline.Options{Process: pipeline.ChildProcess, Threads: 1, Sequences: 8, SequenceLength: 4096, Supervisor: sup})
			require.NoError(t, err)
			sess, err := p.NewSession(pipeline.SessionOptions{})
			require.NoError(t, err)
			_, err = sess.Send(ctx, pipeline.Input{Text: "First turn"}, pipeline.GenerateOptions{MaxTokens: 4})
			require.NoError(t, err)

			const streams = 8
			started := make(chan struct{}, streams)
			type end struct {
				err error
				at  time.Time
			}
			ends := make(chan end, streams)
			rctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
			defer cancel()
			for i := range streams {
				go func() {
					st := p.Stream(rctx, pipeline.Input{Text: "Tell a long story " + string(rune('a'+i))}, pipeline.GenerateOptions{Sampler: sampler.Config{LogitBias: ban}})
					first := true
					for _, err := range st.Tokens() {
						if err != nil {
							ends <- end{err, time.Now()}
							return
						}
						if first {
							started <- struct{}{}
							first = false
						}
					}
					ends <- end{nil, time.Now()}
				}()
			}
			for range streams {
				<-started
			}
			pid := pipeline.ChildPID(p)
			require.Positive(t, pid)
			var imgErr chan error
			at := time.Now()
			switch tc.name {
			case "sigkill":
				require.NoError(t, syscall.Kill(pid, syscall.SIGKILL))
			case "segv-decode":
				require.NoError(t, pipeline.InjectFault(p, "segv-decode:5"))
			case "hang-decode":
				require.NoError(t, pipeline.InjectFault(p, "hang-decode:5"))
			case "abort-encode":
				require.NoError(t, pipeline.InjectFault(p, "abort-encode"))
				imgErr = make(chan error, 1)
				go func() {
					_, err := p.Run(rctx, pipeline.Input{Text: "What is this?", Images: []pipeline.Image{pipeline.ImageOf(picture(32, 32, 7))}}, pipeline.GenerateOptions{MaxTokens: 4})
					imgErr <- err
				}()
			}
			var lastEnd time.Time
			for range streams {
				e := <-ends
				require.Error(t, e.err, "a stream ended normally before the crash")
				require.ErrorIs(t, e.err, pipeline.ErrChildCrashed)
				var ce *pipeline.CrashError
				require.ErrorAs(t, e.err, &ce)
				assert.Equal(t, tc.signal, ce.Signal, "%v", ce)
				assert.Equal(t, tc.hung, ce.Hung)
				assert.Equal(t, pid, ce.PID)
				assert.Equal(t, "decode", ce.Stage)
				if e.at.After(lastEnd) {
					lastEnd = e.at
				}
			}
			if imgErr != nil {
				err := <-imgErr
				require.ErrorIs(t, err, pipeline.ErrChildCrashed)
				var ce *pipeline.CrashError
				require.ErrorAs(t, err, &ce)
				assert.Equal(t, "prompt", ce.Stage)
				assert.Contains(t, ce.Report, "SIGABRT")
				t.Log(err)
			}
			t.Logf("%s: the %d streams ended %v after the fault (the last)", tc.name, streams, lastEnd.Sub(at).Round(time.Millisecond))

			// The next request waits for the restart and succeeds.
			r, err := p.Run(rctx, pipeline.Input{Text: "Hello again"}, pipeline.GenerateOptions{MaxTokens: 4})
			require.NoError(t, err)
			assert.Len(t, r.Tokens, 4)
			assert.Equal(t, 1, p.Restarts())
			assert.NotEqual(t, pid, pipeline.ChildPID(p))
			require.NoError(t, p.Ready())
			// The session goes on: its history is rebuilt in the new child.
			_, err = sess.Send(rctx, pipeline.Input{Text: "Second turn"}, pipeline.GenerateOptions{MaxTokens: 4})
			require.NoError(t, err)
			assert.Len(t, sess.History(), 4)
			st := p.EngineStats()
			assert.GreaterOrEqual(t, st.Completed, int64(2))
			assert.GreaterOrEqual(t, st.Failed, int64(streams), "the calls the death ended count as failed")

			require.NoError(t, p.Close())
			cancel()
			settle(t, goroutines, fds)
		})
	}
}

// TestChildProcessCrashLoop: deaths past Supervisor.CrashLoopDeaths stop
// the restarts; calls and Ready then say why.
func TestChildProcessCrashLoop(t *testing.T) {
	mp, pp := testmodel.TinyPair(t, testmodel.ProjectorMLP, gguf.TypeF16)
	ctx := context.Background()
	p := childPipeline(t, mp, pp, pipeline.Options{Supervisor: pipeline.Supervisor{CrashLoopDeaths: 2, CrashLoopWindow: time.Minute, RestartBackoff: 10 * time.Millisecond}})
	for i := range 2 {
		pid := pipeline.ChildPID(p)
		require.Positive(t, pid, "death %d", i)
		require.NoError(t, syscall.Kill(pid, syscall.SIGKILL))
		if i == 0 {
			waitRestart(t, p, pid)
			_, err := p.Run(ctx, pipeline.Input{Text: "Hi"}, pipeline.GenerateOptions{MaxTokens: 2})
			require.NoError(t, err, "after the first death")
		}
	}
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) && !errors.Is(p.Ready(), pipeline.ErrCrashLoop) {
		time.Sleep(10 * time.Millisecond)
	}
	require.ErrorIs(t, p.Ready(), pipeline.ErrCrashLoop)
	_, err := p.Run(ctx, pipeline.Input{Text: "Hi"}, pipeline.GenerateOptions{MaxTokens: 2})
	require.ErrorIs(t, err, pipeline.ErrCrashLoop)
	require.ErrorIs(t, err, pipeline.ErrChildCrashed)
	t.Log(err)
}

// waitRestart waits until a child other than pid runs.
func waitRestart(t *testing.T, p *pipeline.Pipeline, pid int) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		if n := pipeline.ChildPID(p); n != 0 && n != pid {
			return
		}
		time.Sleep(5 * time.Millisecond)
	}
	t.Fatalf("no new child 30 s after %d died", pid)
}

// TestChildProcessWaitsForRestart: a request arriving while the child
// restarts waits within its deadline, then fails with ErrOverloaded.
func TestChildProcessWaitsForRestart(t *testing.T) {
	mp, pp := testmodel.TinyPair(t, testmodel.ProjectorMLP, gguf.TypeF16)
	p := childPipeline(t, mp, pp, pipeline.Options{Supervisor: pipeline.Supervisor{RestartBackoff: 3 * time.Second}})
	require.NoError(t, syscall.Kill(pipeline.ChildPID(p), syscall.SIGKILL))
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) && p.Ready() == nil {
		time.Sleep(5 * time.Millisecond)
	}
	require.ErrorIs(t, p.Ready(), pipeline.ErrRestarting)
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	_, err := p.Run(ctx, pipeline.Input{Text: "Hi"}, pipeline.GenerateOptions{MaxTokens: 2})
	require.ErrorIs(t, err, pipeline.ErrOverloaded)
	require.ErrorIs(t, err, context.DeadlineExceeded)
	_, err = p.Run(context.Background(), pipeline.Input{Text: "Hi"}, pipeline.GenerateOptions{MaxTokens: 2})
	require.NoError(t, err, "a request without a deadline waits for the restart")
}

// TestChildProcessLoadErrors: a file the child cannot load fails New with
// the child's error, its sentinels intact.
func TestChildProcessLoadErrors(t *testing.T) {
	mp, _ := testmodel.TinyPair(t, testmodel.ProjectorMLP, gguf.TypeF16)
	_, err := pipeline.New(context.Background(), mp, mp, pipeline.Options{Process: pipeline.ChildProcess, Threads: 1, SequenceLength: 512})
	require.Error(t, err)
	assert.NotErrorIs(t, err, pipeline.ErrChildCrashed)
	t.Log(err)
	_, err = pipeline.New(context.Background(), "/nonexistent.gguf", mp, pipeline.Options{Process: pipeline.ChildProcess})
	require.ErrorIs(t, err, llama.ErrNotFound)
}

// TestChildProcessShutdown: Shutdown lets a stream in flight finish and
// refuses new calls.
func TestChildProcessShutdown(t *testing.T) {
	mp, pp := testmodel.TinyPair(t, testmodel.ProjectorMLP, gguf.TypeF16)
	ctx := context.Background()
	p := childPipeline(t, mp, pp, pipeline.Options{})
	st := p.Stream(ctx, pipeline.Input{Text: "Hi"}, pipeline.GenerateOptions{MaxTokens: 30})
	next := make(chan error, 1)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for _, err := range st.Tokens() {
			if err != nil {
				next <- err
				return
			}
		}
		next <- nil
	}()
	for p.EngineStats().Active == 0 && len(next) == 0 {
		time.Sleep(time.Millisecond)
	}
	require.NoError(t, p.Shutdown(ctx))
	wg.Wait()
	require.NoError(t, <-next)
	assert.Len(t, st.Response().Tokens, 30)
	_, err := p.Run(ctx, pipeline.Input{Text: "Hi"}, pipeline.GenerateOptions{MaxTokens: 2})
	require.ErrorIs(t, err, pipeline.ErrClosed)
}

// TestChildProcessRefusesWhatItDoesNotCarry: several choices, logprobs and
// tools are refused with ErrNotInChildProcess (a 400 for a server), not
// run against an engine the parent does not have.
func TestChildProcessRefusesWhatItDoesNotCarry(t *testing.T) {
	mp, pp := testmodel.TinyPair(t, testmodel.ProjectorIdefics3, gguf.TypeF16)
	ctx := context.Background()
	cp := childPipeline(t, mp, pp, pipeline.Options{Sequences: 2})
	_, err := cp.RunChoices(ctx, pipeline.Input{Text: "Hello"}, pipeline.GenerateOptions{MaxTokens: 4}, 2)
	require.ErrorIs(t, err, pipeline.ErrNotInChildProcess)
	assert.ErrorIs(t, err, pipeline.ErrInvalidOptions)
	_, err = cp.Run(ctx, pipeline.Input{Text: "Hello"}, pipeline.GenerateOptions{MaxTokens: 4, Logprobs: true})
	require.ErrorIs(t, err, pipeline.ErrNotInChildProcess)
	// What it carries still works afterwards.
	resp, err := cp.Run(ctx, pipeline.Input{Text: "Hello"}, pipeline.GenerateOptions{MaxTokens: 4})
	require.NoError(t, err)
	assert.NotEmpty(t, resp.Tokens)
}
