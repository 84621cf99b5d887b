package llama

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"sync"
	"sync/atomic"

	"github.com/vlm-go/vlm"
)

// FlashAttention selects when flash attention is used.
type FlashAttention = vlm.FlashAttention

// Flash attention settings.
const (
	FlashAttentionAuto = vlm.FlashAttentionAuto // llama.cpp decides
	FlashAttentionOn   = vlm.FlashAttentionOn   // always
	FlashAttentionOff  = vlm.FlashAttentionOff  // never
)

// ContextOptions configure NewContext. Zero fields take defaults: ContextSize 4096
// (capped at the training length), BatchSize 512, UBatchSize = BatchSize, one
// sequence, threads = vlm.DefaultThreads() (physical cores less one).
type ContextOptions struct {
	ContextSize  int            // context length in tokens
	BatchSize    int            // most tokens per Decode
	UBatchSize   int            // most tokens per compute step (≤ BatchSize); must be ≥ an image's tokens for non-causal projectors
	Sequences    int            // sequences the context holds (conversations decoded together); ids 0..Sequences-1
	Threads      int            // threads for generation; 0 means vlm.DefaultThreads()
	ThreadsBatch int            // threads for prompt processing (default: Threads)
	FlashAttn    FlashAttention // flash attention
	Embeddings   bool           // also compute embeddings
	// SplitKV gives each sequence its own KV buffer instead of one shared
	// (unified) buffer. Unified is the default: CopySequence then shares
	// cells, which is what prefix reuse across sequences needs.
	SplitKV bool
}

// DefaultContextSize is the context length used when ContextOptions.ContextSize is zero.
const DefaultContextSize = 4096

func (o ContextOptions) withDefaults(nCtxTrain int) (ContextOptions, error) {
	if o.ContextSize < 0 || o.BatchSize < 0 || o.UBatchSize < 0 || o.Sequences < 0 || o.Threads < 0 || o.ThreadsBatch < 0 {
		return o, fmt.Errorf("negative context option in %+v: %w", o, ErrInvalidArgument)
	}
	if o.ContextSize == 0 {
		o.ContextSize = DefaultContextSize
		if nCtxTrain > 0 && nCtxTrain < o.ContextSize {
			o.ContextSize = nCtxTrain
		}
	}
	if o.BatchSize == 0 {
		o.BatchSize = min(512, o.ContextSize)
	}
	if o.UBatchSize == 0 {
		o.UBatchSize = o.BatchSize
	}
	if o.UBatchSize > o.BatchSize {
		return o, fmt.Errorf("UBatchSize %d > BatchSize %d: %w", o.UBatchSize, o.BatchSize, ErrInvalidArgument)
	}
	if o.Sequences == 0 {
		o.Sequences = 1
	}
	if o.Sequences > 256 {
		return o, fmt.Errorf("option Sequences %d > 256: %w", o.Sequences, ErrInvalidArgument)
	}
	if o.Threads == 0 {
		o.Threads = vlm.DefaultThreads()
	}
	if o.ThreadsBatch == 0 {
		o.ThreadsBatch = o.Threads
	}
	return o, nil
}

// Context holds the KV cache and compute buffers for one model. It is for
// one goroutine at a time: overlapping calls return ErrConcurrentUse (Abort
// and Close may be called from anywhere).
type Context struct {
	model    *Model
	opts     ContextOptions
	busy     atomic.Bool
	abortReq atomic.Bool                      // Abort was called; cleared by a cancelled Decode
	running  atomic.Pointer[vlm.LlamaContext] // set while a call holds mu
	mu       sync.Mutex                       // guards c against Close during a call
	c        *vlm.LlamaContext
	cleanup  runtime.Cleanup
}

// NewContext creates a context for the model.
func (m *Model) NewContext(opts ContextOptions) (*Context, error) {
	info, err := m.Info()
	if err != nil {
		return nil, err
	}
	if info.VocabOnly {
		return nil, fmt.Errorf("NewContext: %s: %w; load it without VocabOnly", m.path, ErrVocabOnly)
	}
	opts, err = opts.withDefaults(info.NCtxTrain)
	if err != nil {
		return nil, err
	}
	if err := m.acquire(); err != nil {
		return nil, err
	}
	var c *vlm.LlamaContext
	err = m.use(func(mc *vlm.LlamaModel) (err error) {
		c, err = vlm.NewContext(mc, vlm.ContextParams{
			NCtx: opts.ContextSize, NBatch: opts.BatchSize, NUbatch: opts.UBatchSize, NSeqMax: opts.Sequences,
			Threads: opts.Threads, ThreadsBatch: opts.ThreadsBatch, FlashAttn: opts.FlashAttn,
			Embeddings: opts.Embeddings, KVUnified: !opts.SplitKV,
		})
		return err
	})
	if err != nil {
		m.release()
		return nil, err
	}
	opts.ContextSize = c.NCtx() // llama.cpp rounds the length up
	opts.BatchSize = c.NBatch()
	opts.UBatchSize = c.NUbatch()
	x := &Context{model: m, opts: opts, c: c}
	x.cleanup = runtime.AddCleanup(x, func(c *vlm.LlamaContext) { c.Free(); m.release() }, c)
	return x, nil
}

// Close frees the context (idempotent) and releases its hold on the model.
func (x *Context) Close() error {
	if x == nil {
		return nil
	}
	x.abortNative()
	x.mu.Lock()
	defer x.mu.Unlock()
	if x.c == nil {
		return nil
	}
	x.cleanup.Stop()
	x.c.Free()
	x.c = nil
	x.model.release()
	return nil
}

// abortNative stops a Decode that is running now, so that Close does not
// wait for it to finish. vlm.LlamaContext.Abort is safe even when the
// native context has been freed in the meantime (it then does nothing).
func (x *Context) abortNative() {
	if c := x.running.Load(); c != nil {
		c.Abort()
	}
}

// Abort cancels a Decode: the one running now on another goroutine (it
// stops on the CPU backend and returns an error wrapping ErrCancelled), or,
// when none is running, the next Decode on this context, which then returns
// ErrCancelled without computing anything. An Abort is pending until a
// Decode returns ErrCancelled: it is never lost, and one Abort cancels one
// Decode (several Aborts before that Decode count as one). A Decode that
// finishes before it sees the Abort leaves it pending for the next one.
// Abort is safe to call from any goroutine at any time, also during or after
// Close.
func (x *Context) Abort() {
	if x == nil {
		return
	}
	x.abortReq.Store(true)
	x.abortNative()
}

// enter marks the context busy for one call and returns the native handle.
func (x *Context) enter() (*vlm.LlamaContext, error) {
	if x == nil {
		return nil, ErrClosed
	}
	if !x.busy.CompareAndSwap(false, true) {
		return nil, ErrConcurrentUse
	}
	x.mu.Lock()
	if x.c == nil {
		x.mu.Unlock()
		x.busy.Store(false)
		return nil, ErrClosed
	}
	x.running.Store(x.c)
	return x.c, nil
}

func (x *Context) leave() {
	x.running.Store(nil)
	x.mu.Unlock()
	x.busy.Store(false)
}

// do runs f inside enter/leave.
func (x *Context) do(f func(c *vlm.LlamaContext) error) error {
	c, err := x.enter()
	if err != nil {
		return err
	}
	defer x.leave()
	return f(c)
}

// Model returns the context's model.
func (x *Context) Model() *Model { return x.model }

// Options returns the options the context was made with, defaults filled in.
func (x *Context) Options() ContextOptions { return x.opts }

// Decode evaluates a batch. ctx cancels a decode running on the CPU (the
// error wraps ErrCancelled). A full KV cache gives ErrContextFull.
func (x *Context) Decode(ctx context.Context, b *Batch) error {
	return x.do(func(c *vlm.LlamaContext) error { return x.decodeLocked(ctx, c, b) })
}

func (x *Context) decodeLocked(ctx context.Context, c *vlm.LlamaContext, b *Batch) error {
	if b == nil || b.c == nil {
		return fmt.Errorf("batch is nil or closed: %w", ErrClosed)
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("%w (%w)", ErrCancelled, err)
	}
	if b.nEmbd == 0 {
		for _, t := range b.tokens {
			if t < 0 || int(t) >= b.vocab {
				return fmt.Errorf("token %d of a %d-token vocabulary: %w", t, b.vocab, ErrInvalidArgument)
			}
		}
	}
	// Clear what an earlier Decode's ctx or Close left; a pending Abort
	// lives in abortReq, checked after the clear so that one arriving in
	// between is seen either here or by llama_decode's abort callback.
	c.ClearAbort()
	if x.abortReq.CompareAndSwap(true, false) {
		return fmt.Errorf("Abort was called before this Decode: %w", ErrCancelled)
	}
	// ctx's cancellation aborts this decode only: stop waits for a callback
	// already started, so that it cannot set the flag during a later Decode.
	fired := make(chan struct{})
	stop := context.AfterFunc(ctx, func() { c.Abort(); close(fired) })
	err := c.Decode(b.c)
	runtime.KeepAlive(b) // b's cleanup frees b.c's arrays
	if !stop() {
		<-fired
	}
	if errors.Is(err, ErrCancelled) {
		x.abortReq.Store(false) // this Decode consumed a pending Abort
	}
	if err != nil && ctx.Err() != nil {
		return fmt.Errorf("%w (%w)", err, ctx.Err())
	}
	return err
}

// Logits returns a copy of the logits of output i of the last Decode (i is
// the batch index of a token added with logits; -1 means the last output).
func (x *Context) Logits(i int) ([]float32, error) {
	var out []float32
	err := x.do(func(c *vlm.LlamaContext) (err error) { out, err = c.Logits(i); return err })
	return out, err
}

// LogitsInto is Logits writing into dst[:0] (grown if it is too small)
// and returning it: a loop that reads the logits of every step reuses one
// buffer instead of allocating the vocabulary's size (200 KB for 49k
// tokens) per token, which keeps Go's collector off the cores ggml's
// threads decode on.
func (x *Context) LogitsInto(i int, dst []float32) ([]float32, error) {
	var out []float32
	err := x.do(func(c *vlm.LlamaContext) (err error) { out, err = c.LogitsInto(i, dst); return err })
	return out, err
}

// Embeddings returns a copy of the embedding of output i of the last Decode
// (needs ContextOptions.Embeddings).
func (x *Context) Embeddings(i int) ([]float32, error) {
	var out []float32
	err := x.do(func(c *vlm.LlamaContext) (err error) { out, err = c.Embeddings(i); return err })
	return out, err
}

// SetCausalAttention switches causal attention off while decoding
// embeddings that need bidirectional attention (some image projectors).
func (x *Context) SetCausalAttention(causal bool) error {
	return x.do(func(c *vlm.LlamaContext) error { c.SetCausalAttention(causal); return nil })
}

// SetThreads sets the threads for generation and prompt processing.
func (x *Context) SetThreads(gen, batch int) error {
	if gen <= 0 || batch <= 0 {
		return fmt.Errorf("threads %d, %d: %w", gen, batch, ErrInvalidArgument)
	}
	return x.do(func(c *vlm.LlamaContext) error { c.SetThreads(gen, batch); return nil })
}

// Memory operations on the KV cache. Positions select [p0, p1); p0 < 0
// means from the start, p1 < 0 to the end.

func (x *Context) checkSeq(seq int32, allowAll bool) error {
	if (seq < 0 && !allowAll) || int(seq) >= x.opts.Sequences {
		return fmt.Errorf("sequence %d of a context with %d: %w", seq, x.opts.Sequences, ErrInvalidArgument)
	}
	return nil
}

// ClearMemory empties the KV cache.
func (x *Context) ClearMemory() error {
	return x.do(func(c *vlm.LlamaContext) error { c.MemoryClear(true); return nil })
}

// RemovePositions removes positions [p0, p1) of sequence seq (seq -1: all).
func (x *Context) RemovePositions(seq, p0, p1 int32) error {
	if err := x.checkSeq(seq, true); err != nil {
		return err
	}
	return x.do(func(c *vlm.LlamaContext) error {
		if !c.MemorySeqRemove(seq, p0, p1) {
			return fmt.Errorf("cannot remove positions [%d, %d) of sequence %d: %w", p0, p1, seq, ErrInvalidArgument)
		}
		return nil
	})
}

// CopySequence copies positions [p0, p1) of sequence src into dst (they
// share the cells; no memory is copied).
func (x *Context) CopySequence(src, dst, p0, p1 int32) error {
	if err := x.checkSeq(src, false); err != nil {
		return err
	}
	if err := x.checkSeq(dst, false); err != nil {
		return err
	}
	return x.do(func(c *vlm.LlamaContext) error { c.MemorySeqCopy(src, dst, p0, p1); return nil })
}

// KeepSequence removes every sequence but seq.
func (x *Context) KeepSequence(seq int32) error {
	if err := x.checkSeq(seq, false); err != nil {
		return err
	}
	return x.do(func(c *vlm.LlamaContext) error { c.MemorySeqKeep(seq); return nil })
}

// ShiftPositions adds delta to positions [p0, p1) of sequence seq.
func (x *Context) ShiftPositions(seq, p0, p1, delta int32) error {
	if err := x.checkSeq(seq, false); err != nil {
		return err
	}
	return x.do(func(c *vlm.LlamaContext) error {
		if !c.MemoryCanShift() {
			return fmt.Errorf("this context's memory cannot shift positions: %w", ErrInvalidArgument)
		}
		return c.MemorySeqAdd(seq, p0, p1, delta)
	})
}

// MaxPosition returns the largest position stored for seq, -1 when empty.
func (x *Context) MaxPosition(seq int32) (int32, error) {
	if err := x.checkSeq(seq, false); err != nil {
		return -1, err
	}
	p := int32(-1)
	err := x.do(func(c *vlm.LlamaContext) error { p = c.MemorySeqPosMax(seq); return nil })
	return p, err
}

// Perf are performance counters of a context.
type Perf = vlm.PerfData

// Perf returns the context's performance counters.
func (x *Context) Perf() (Perf, error) {
	var p Perf
	err := x.do(func(c *vlm.LlamaContext) error { p = c.Perf(); return nil })
	return p, err
}

// ResetPerf zeroes the performance counters.
func (x *Context) ResetPerf() error {
	return x.do(func(c *vlm.LlamaContext) error { c.PerfReset(); return nil })
}
