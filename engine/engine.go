package engine

import (
	"context"
	"errors"
	"fmt"
	"github.com/vlm-go/vlm/internal/errkind"
	"iter"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/vlm-go/vlm"
	"github.com/vlm-go/vlm/llama"
	"github.com/vlm-go/vlm/mtmd"
	"github.com/vlm-go/vlm/sampler"
)

// Errors of this package; those of llama, mtmd and sampler pass through
// wrapped.
var (
	// ErrOverloaded: Options.MaxWaiting requests are already waiting for a
	// sequence; a server answers 429 or 503 and the client retries later.
	ErrOverloaded = errors.New("engine: overloaded: too many requests waiting")
	// ErrInvalidRequest: the request is empty or inconsistent.
	ErrInvalidRequest = errkind.New("engine: invalid request", vlm.ErrInvalidArgument)
	// ErrInvalidOptions: an option is out of range.
	ErrInvalidOptions = errkind.New("engine: invalid options", vlm.ErrInvalidArgument)
	// ErrClosed: the engine was closed (before or while the request ran).
	ErrClosed = vlm.ErrClosed
	// ErrShuttingDown: Shutdown was called; the engine answers the
	// requests it has and takes no more (a server answers 503). It wraps
	// ErrClosed.
	ErrShuttingDown = fmt.Errorf("engine: shutting down: %w", ErrClosed)
)

// Options configure New. The zero value is one sequence of 4096 positions.
type Options struct {
	// Sequences is how many requests are decoded together (the context's
	// llama.ContextOptions.Sequences); 0 means 1, at most 256.
	Sequences int
	// SequenceLength bounds one request: its prompt and answer, in
	// positions; 0 means llama.DefaultContextSize (capped at the model's training
	// length).
	SequenceLength int
	// ContextSize is the KV cache of the whole context, in cells, shared by
	// every sequence; 0 means Sequences × SequenceLength, so that every
	// sequence can be full at once. A smaller cache admits a request only
	// when its prompt and MaxTokens fit beside the running ones.
	ContextSize int
	// BatchSize is the most tokens decoded in one step (BatchSize and
	// UBatchSize); 0 means 512. It must hold an image's tokens for projectors
	// with non-causal attention.
	BatchSize int
	// Threads decode; 0 means vlm.DefaultThreads(). While the projector
	// encodes an image the engine decodes with fewer: half of them with an
	// encoder at the lowest CPU priority (mtmd.Options.IdlePriority, which
	// then has every core the engine leaves), else Threads less the
	// encoder's.
	Threads int
	// FlashAttn selects flash attention.
	FlashAttn llama.FlashAttention
	// MaxWaiting bounds the requests waiting for a sequence; Submit
	// returns ErrOverloaded beyond it. 0 means 64 or 16 × Sequences,
	// whichever is more; -1 means no bound.
	MaxWaiting int
	// StreamBuffer is how many tokens a stream holds for a reader that is
	// behind; its sequence pauses while the buffer is full (the others go
	// on). 0 means 64.
	StreamBuffer int
}

func (o Options) withDefaults(nCtxTrain int) (Options, error) {
	if o.Sequences < 0 || o.SequenceLength < 0 || o.ContextSize < 0 || o.BatchSize < 0 || o.Threads < 0 || o.MaxWaiting < -1 || o.StreamBuffer < 0 {
		return o, fmt.Errorf("negative option in %+v: %w", o, ErrInvalidOptions)
	}
	if o.Sequences == 0 {
		o.Sequences = 1
	}
	if o.Sequences > 256 {
		return o, fmt.Errorf("option Sequences %d > 256: %w", o.Sequences, ErrInvalidOptions)
	}
	if o.SequenceLength == 0 {
		o.SequenceLength = llama.DefaultContextSize
		if nCtxTrain > 0 && nCtxTrain < o.SequenceLength {
			o.SequenceLength = nCtxTrain
		}
	}
	if o.ContextSize == 0 {
		o.ContextSize = o.Sequences * o.SequenceLength
	}
	if o.ContextSize < o.SequenceLength {
		return o, fmt.Errorf("ContextSize %d < SequenceLength %d: %w", o.ContextSize, o.SequenceLength, ErrInvalidOptions)
	}
	if o.BatchSize == 0 {
		o.BatchSize = 512
	}
	if o.Threads == 0 {
		o.Threads = vlm.DefaultThreads()
	}
	if o.MaxWaiting == 0 {
		o.MaxWaiting = max(64, 16*o.Sequences)
	}
	if o.StreamBuffer == 0 {
		o.StreamBuffer = 64
	}
	return o, nil
}

// Engine decodes many requests in one context. It is safe for concurrent
// use.
type Engine struct {
	opts      Options
	model     *llama.Model
	proj      *mtmd.Projector
	nonCausal bool // the projector's images need causal attention off
	nVocab    int
	x         *llama.Context
	batch     *llama.Batch

	runCtx  context.Context // cancelled by Close: aborts a running decode
	stopRun context.CancelFunc
	wake    chan struct{} // cap 1: the scheduler has something to look at
	done    chan struct{} // closed when the scheduler has ended
	encDone chan struct{} // closed when the encoder has ended
	enc     encoder

	mu       sync.Mutex
	closed   bool
	draining bool       // Shutdown was called: Submit refuses
	waiting  []*request // submitted, not yet admitted (guarded by mu)

	drained   chan struct{} // closed by the scheduler once draining and nothing is left
	drainOnce sync.Once

	// xmu is held by the scheduler while it uses the context (each turn
	// of its loop, not while it waits) and by Perf.
	xmu sync.Mutex

	// Scheduler state (its goroutine only).
	slots    []*slot
	queue    []*request // waiting, in submission order
	active   []*request // admitted, in admission order
	clock    int64      // steps, for least-recently-used slots
	threads  int        // the context's threads now
	imageRR  int        // round robin over prefilling requests at an image
	counters counters
}

// New makes an engine over model (and proj, for prompts with images; nil
// for text only), with one context of opts.ContextSize cells.
func New(model *llama.Model, proj *mtmd.Projector, opts Options) (*Engine, error) {
	if model == nil {
		return nil, fmt.Errorf("engine.New: nil model: %w", ErrInvalidOptions)
	}
	if proj != nil && proj.Model() != model {
		return nil, fmt.Errorf("engine.New: the projector belongs to another model: %w", mtmd.ErrProjectorMismatch)
	}
	info, err := model.Info()
	if err != nil {
		return nil, err
	}
	if opts, err = opts.withDefaults(info.NCtxTrain); err != nil {
		return nil, err
	}
	x, err := model.NewContext(llama.ContextOptions{
		ContextSize: opts.ContextSize, BatchSize: opts.BatchSize, UBatchSize: opts.BatchSize, Sequences: opts.Sequences,
		Threads: opts.Threads, FlashAttn: opts.FlashAttn,
	})
	if err != nil {
		return nil, err
	}
	b, err := model.NewBatch(x.Options().BatchSize, 1)
	if err != nil {
		x.Close()
		return nil, err
	}
	e := &Engine{
		opts: opts, model: model, proj: proj, x: x, batch: b,
		wake: make(chan struct{}, 1), done: make(chan struct{}), encDone: make(chan struct{}), drained: make(chan struct{}),
		threads: opts.Threads, nVocab: info.NVocab,
	}
	if proj != nil {
		e.nonCausal = proj.UsesNonCausal()
	}
	e.runCtx, e.stopRun = context.WithCancel(context.Background())
	for i := range opts.Sequences {
		e.slots = append(e.slots, &slot{id: int32(i)})
	}
	e.enc.init(e)
	go e.enc.run()
	go e.schedule()
	return e, nil
}

// Options returns the options the engine was made with, defaults filled in.
func (e *Engine) Options() Options { return e.opts }

// Perf returns the performance counters of the engine's context:
// llama.cpp's time and tokens in prompt batches (a batch of more than one
// token, which is most steps when several sequences decode) and in
// single-token steps. It waits for the step being decoded, if any.
func (e *Engine) Perf() (llama.Perf, error) {
	e.xmu.Lock()
	defer e.xmu.Unlock()
	return e.x.Perf()
}

// Shutdown stops the engine gracefully: Submit refuses new requests with
// ErrShuttingDown at once, the requests already submitted (running or
// waiting for a sequence) are answered, and then the engine is closed.
// If ctx ends first, the requests left end as with Close (ErrClosed) and
// Shutdown returns ctx's error. It may be called more than once and
// with Close; after Close it returns nil.
func (e *Engine) Shutdown(ctx context.Context) error {
	e.mu.Lock()
	closed := e.closed
	e.draining = true
	e.mu.Unlock()
	if closed {
		return e.Close()
	}
	e.wakeUp()
	var err error
	select {
	case <-e.drained:
	case <-e.done: // closed meanwhile
	case <-ctx.Done():
		err = fmt.Errorf("engine: shutdown: %w", context.Cause(ctx))
	}
	if cerr := e.Close(); err == nil {
		err = cerr
	}
	return err
}

// Close ends every request at once (their streams end with ErrClosed;
// Shutdown lets them finish first), stops the engine's goroutines and
// frees its context (idempotent). It does not close the model or the
// projector.
func (e *Engine) Close() error {
	e.mu.Lock()
	if e.closed {
		e.mu.Unlock()
		<-e.done
		<-e.encDone
		return nil
	}
	e.closed = true
	e.mu.Unlock()
	e.stopRun()
	e.wakeUp()
	<-e.done
	e.enc.stop()
	<-e.encDone
	e.batch.Close()
	return e.x.Close()
}

// wakeUp tells the scheduler to look again (never blocks).
func (e *Engine) wakeUp() {
	select {
	case e.wake <- struct{}{}:
	default:
	}
}

// Stats are the engine's counters since New.
type Stats struct {
	Submitted      int64 // requests accepted by Submit
	Overloaded     int64 // requests refused with ErrOverloaded
	Completed      int64 // requests that ended with an answer
	Failed         int64 // requests that ended with an error (cancellations included)
	Steps          int64 // decode steps (token batches and image chunks)
	TokensDecoded  int64 // text tokens decoded (prompts and answers)
	ReusedTokens   int64 // prompt entries taken from the KV cache instead of evaluated
	CopiedPrefixes int64 // requests that started from another sequence's prefix
	// Forked is the choices after the first of SubmitN requests: each
	// started from a copy of the first one's evaluated prompt (counted
	// in CopiedPrefixes and ReusedTokens too).
	Forked  int64
	Waiting int // requests waiting for a sequence now
	Active  int // requests being answered now
	// KV cache cells (one per prompt entry or answer token), as the
	// scheduler last counted them: the context's cells (Options.ContextSize),
	// those reserved by running requests (each its prompt and room for its
	// answer, the admission rule), and those that free sequences keep for
	// prefix reuse (evicted when a request needs the room).
	KVCells, KVCellsReserved, KVCellsCached int
}

type counters struct {
	submitted, overloaded, completed, failed, steps, decoded, reused, copied, forked atomic.Int64
	waiting, active                                                                  atomic.Int32
	kvReserved, kvCached                                                             atomic.Int64
}

// Stats returns the engine's counters.
func (e *Engine) Stats() Stats {
	c := &e.counters
	return Stats{
		Submitted: c.submitted.Load(), Overloaded: c.overloaded.Load(), Completed: c.completed.Load(), Failed: c.failed.Load(),
		Steps: c.steps.Load(), TokensDecoded: c.decoded.Load(), ReusedTokens: c.reused.Load(), CopiedPrefixes: c.copied.Load(), Forked: c.forked.Load(),
		Waiting: int(c.waiting.Load()), Active: int(c.active.Load()),
		KVCells: e.opts.ContextSize, KVCellsReserved: int(c.kvReserved.Load()), KVCellsCached: int(c.kvCached.Load()),
	}
}

// Request is one prompt to answer.
type Request struct {
	// Chunks is the tokenized prompt (mtmd.Projector.Tokenize, with an
	// image cache so that a picture asked about again is not encoded
	// again). The engine owns it from Submit on, also when Submit fails,
	// and closes it when the request ends. Its last chunk must be text.
	Chunks *mtmd.Chunks
	// Tokens is a text-only prompt, used when Chunks is nil.
	Tokens []llama.Token
	// Sampler chooses tokens; the zero value is greedy.
	Sampler sampler.Config
	// MaxTokens bounds the answer; 0 means until the sequence is full.
	MaxTokens int
	// Stop ends the answer at any of these strings (not included).
	Stop []string
	// Special renders special tokens in the tokens' text.
	Special bool
	// SequenceLength bounds the prompt and answer of this request; 0 means
	// Options.SequenceLength, which it may not exceed.
	SequenceLength int
	// Logprobs asks for each answer token's log-probability under the
	// model's distribution (llama.GeneratedToken.Logprobs: the
	// log-softmax of the raw logits, before the sampler changes them) and
	// TopLogprobs (0 to llama.MaxTopLogprobs) for the most likely tokens
	// at each position. Off, it costs nothing; on, one pass over the
	// vocabulary's logits per token.
	Logprobs    bool
	TopLogprobs int
	// ImageProgress, if set, is called by Stream.Tokens on the reader's
	// goroutine after each image chunk of the prompt is evaluated, with
	// the chunks done and the total to evaluate (chunks found in the KV
	// cache are not counted).
	ImageProgress func(done, total int)
}

// Result describes a finished request.
type Result struct {
	llama.GenerateResult
	// Err is why the request failed; nil for an answer (any StopReason
	// but StopError and StopCancelled).
	Err error
	// Sequence is the sequence the request ran in (-1 if it never ran).
	Sequence int32
	// Seed is the seed its sampler used (a random one when
	// Sampler.Seed was 0; SubmitN's choice i: Seed+i).
	Seed uint32

	PromptTokens     int           // entries of the prompt: text tokens plus image embeddings
	ImageTokens      int           // image embeddings in the prompt
	CachedTokens     int           // prompt entries reused from the KV cache (this or another sequence)
	EvaluatedTokens  int           // prompt entries evaluated
	ImagesEncoded    int           // image chunks run through the vision encoder
	ImagesCached     int           // image chunks whose embeddings were known (image cache)
	QueueTime        time.Duration // from Submit to a sequence
	EncodeTime       time.Duration // time in the vision encoder
	PrefillTime      time.Duration // from a sequence to the prompt's last entry evaluated
	DecodeTime       time.Duration // from the first answer token to the end
	TimeToFirstToken time.Duration // from Submit to the first answer token
}

// event is one item of a stream: a token, or image progress.
type event struct {
	tok                  llama.GeneratedToken
	imageDone, imageOuts int // image progress, when imageOuts > 0
}

// Stream is a request being answered; iterate Tokens once, then read
// Result.
type Stream struct {
	r *request
}

// Tokens yields the answer's tokens as they are generated; an error (the
// request failed or was cancelled) ends it. Breaking out of the loop
// cancels the request; its Result is then what the loop took, with
// StopBreak (unless it had failed).
func (s *Stream) Tokens() iter.Seq2[llama.GeneratedToken, error] {
	return func(yield func(llama.GeneratedToken, error) bool) {
		r := s.r
		reading := r.startReading()
		complete := false // the loop saw the stream's end
		var took *taken   // what the reader took, when it broke out
		defer func() {
			if !complete && took == nil {
				r.cancel(errBreak) // yield panicked: nobody reads any more
			}
			if reading {
				r.stopReading(took)
			}
		}()
		delivered := 0
		var text strings.Builder
		for ev := range r.events {
			// Take the event, then look for a stall mark: the scheduler
			// marks, then looks at unread again (step), so one of the two
			// sees the other and the scheduler is never left asleep.
			r.unread.Add(-1)
			if r.stalled.Load() {
				r.e.wakeUp()
			}
			if r.userCancelled() {
				// Cancelled: what is still buffered is not delivered.
				for range r.events {
				}
				break
			}
			if ev.imageOuts > 0 {
				if r.progress != nil {
					r.progress(ev.imageDone, ev.imageOuts)
				}
				continue
			}
			if !yield(ev.tok, nil) {
				r.cancel(errBreak)
				for range r.events { // wait for the end: res is then written
				}
				if ev.tok.ID >= 0 {
					delivered++
				}
				took = &taken{tokens: delivered, text: text.String() + ev.tok.Text}
				return
			}
			if ev.tok.ID >= 0 {
				delivered++
			}
			text.WriteString(ev.tok.Text)
		}
		complete = true
		if reading {
			r.stopReading(nil) // the result is final: Done closes before the last yields
			reading = false
		}
		if r.tail != nil && !yield(*r.tail, nil) {
			return
		}
		if r.res.Err != nil {
			yield(llama.GeneratedToken{}, r.res.Err)
		}
	}
}

// userCancelled reports whether the request's ctx was cancelled (not by
// its own end, which also cancels it, nor by a reader's break).
func (r *request) userCancelled() bool {
	select {
	case <-r.finished:
		return r.res.Err != nil && errors.Is(r.res.Err, llama.ErrCancelled)
	default:
		// finish cancels the ctx only after closing finished.
		return r.ctx.Err() != nil && !errors.Is(context.Cause(r.ctx), errBreak)
	}
}

// errBreak is the cancellation cause of a reader that stopped iterating.
var errBreak = errors.New("engine: the reader stopped")

// Wait reads the stream to its end and returns the result.
func (s *Stream) Wait() Result {
	for range s.Tokens() {
	}
	return s.Result()
}

// Result returns the request's result once Done is closed (and a zero
// Result with Sequence -1 before); it does not change after that.
func (s *Stream) Result() Result {
	select {
	case <-s.r.done:
		return s.r.res
	default:
		return Result{Sequence: -1, GenerateResult: llama.GenerateResult{Reason: ""}}
	}
}

// Done is closed when the request has ended and, if a loop over Tokens is
// running, that loop has ended too (a loop that breaks out sets the
// result); Result is final from then on. Tokens closes it before its loop
// returns.
func (s *Stream) Done() <-chan struct{} { return s.r.done }

// Cancel stops the request; its stream ends with an error wrapping
// llama.ErrCancelled.
func (s *Stream) Cancel() { s.r.cancel(context.Canceled) }
