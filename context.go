package vlm

/*
#include "binding.h"
*/
import "C"

import (
	"fmt"
	"runtime"
	"sync"
	"sync/atomic"
	"unsafe"
)

// FlashAttention selects when llama.cpp uses flash attention.
type FlashAttention int

// Flash attention settings.
const (
	FlashAttentionAuto FlashAttention = iota // llama.cpp decides (its default)
	FlashAttentionOn                         // always
	FlashAttentionOff                        // never
)

// ContextParams are the options of NewContext (llama_context_params). Zero
// fields keep llama.cpp's defaults.
type ContextParams struct {
	NCtx         int // context length in tokens; 0 = the model's training length
	NBatch       int // most tokens per Decode call
	NUbatch      int // most tokens per compute step (≤ NBatch)
	NSeqMax      int // most distinct sequences
	Threads      int // threads for generation
	ThreadsBatch int // threads for prompt processing
	FlashAttn    FlashAttention
	Embeddings   bool // also compute embeddings
	KVUnified    bool // one KV buffer shared by all sequences
}

// LlamaContext is an inference context (struct llama_context): a KV cache and
// compute buffers for one model. It is not safe for concurrent use.
type LlamaContext struct {
	c     *C.struct_llama_context
	model *LlamaModel
	// abort is read by vlm_abort_trampoline during llama_decode. abortMu
	// guards the pointer (not the flag, which is atomic) so that Abort and
	// ClearAbort may run on any goroutine, even during or after Free.
	abortMu sync.Mutex
	abort   *C.int
	nVocab  int
	// outputs[i] is whether batch entry i of the last successful Decode
	// asked for logits; nOutputs counts them. llama.cpp aborts (debug) or
	// returns NULL (release) for other indices, so they are checked here.
	outputs  []bool
	nOutputs int
}

// NewContext creates a context for m.
func NewContext(m *LlamaModel, p ContextParams) (*LlamaContext, error) {
	if !m.Valid() {
		return nil, ErrClosed
	}
	if m.vocabOnly {
		return nil, fmt.Errorf("a context needs the model's weights: %w; load the model without VocabOnly", ErrVocabOnly)
	}
	params := C.llama_context_default_params()
	if p.NCtx > 0 {
		params.n_ctx = C.uint32_t(p.NCtx)
	}
	if p.NBatch > 0 {
		params.n_batch = C.uint32_t(p.NBatch)
	}
	if p.NUbatch > 0 {
		params.n_ubatch = C.uint32_t(p.NUbatch)
	}
	if p.NSeqMax > 0 {
		params.n_seq_max = C.uint32_t(p.NSeqMax)
	}
	if p.Threads > 0 {
		params.n_threads = C.int32_t(p.Threads)
		params.n_threads_batch = C.int32_t(p.Threads)
	}
	if p.ThreadsBatch > 0 {
		params.n_threads_batch = C.int32_t(p.ThreadsBatch)
	}
	switch p.FlashAttn {
	case FlashAttentionOn:
		params.flash_attn_type = C.LLAMA_FLASH_ATTN_TYPE_ENABLED
	case FlashAttentionOff:
		params.flash_attn_type = C.LLAMA_FLASH_ATTN_TYPE_DISABLED
	}
	params.embeddings = C.bool(p.Embeddings)
	params.kv_unified = C.bool(p.KVUnified)
	params.no_perf = false

	abort := (*C.int)(C.calloc(1, C.size_t(unsafe.Sizeof(C.int(0)))))
	if abort == nil {
		return nil, fmt.Errorf("calloc of the abort flag failed: %w", ErrLoad)
	}
	params.abort_callback = C.ggml_abort_callback(C.vlm_abort_trampoline)
	params.abort_callback_data = unsafe.Pointer(abort)
	c := C.vlm_llama_init_from_model(m.c, params)
	if c == nil {
		C.free(unsafe.Pointer(abort))
		return nil, fmt.Errorf("llama_init_from_model failed (n_ctx=%d, n_batch=%d, n_ubatch=%d): %w",
			p.NCtx, p.NBatch, p.NUbatch, ErrLoad)
	}
	return &LlamaContext{c: c, model: m, abort: abort, nVocab: m.VocabSize()}, nil
}

// Free releases the context. Later calls return ErrClosed, or zero values
// where a method has no error result; Abort and ClearAbort do nothing.
func (x *LlamaContext) Free() {
	if x == nil || x.c == nil {
		return
	}
	C.vlm_llama_free(x.c)
	x.c = nil
	x.abortMu.Lock()
	C.free(unsafe.Pointer(x.abort))
	x.abort = nil
	x.abortMu.Unlock()
}

// Valid reports whether the context exists and is not freed.
func (x *LlamaContext) Valid() bool { return x != nil && x.c != nil }

// NCtx returns the context length.
func (x *LlamaContext) NCtx() int {
	if !x.Valid() {
		return 0
	}
	return int(C.llama_n_ctx(x.c))
}

// NBatch returns the most tokens one Decode call takes.
func (x *LlamaContext) NBatch() int {
	if !x.Valid() {
		return 0
	}
	return int(C.llama_n_batch(x.c))
}

// NUbatch returns the most tokens one compute step takes.
func (x *LlamaContext) NUbatch() int {
	if !x.Valid() {
		return 0
	}
	return int(C.llama_n_ubatch(x.c))
}

// NSeqMax returns the most sequences the context holds.
func (x *LlamaContext) NSeqMax() int {
	if !x.Valid() {
		return 0
	}
	return int(C.llama_n_seq_max(x.c))
}

// SetThreads sets the threads for generation and for prompt processing.
func (x *LlamaContext) SetThreads(gen, batch int) {
	if !x.Valid() {
		return
	}
	C.llama_set_n_threads(x.c, C.int32_t(gen), C.int32_t(batch))
}

// SetCausalAttention switches causal attention (off while decoding image
// embeddings of projectors that need non-causal attention).
func (x *LlamaContext) SetCausalAttention(causal bool) {
	if x.Valid() {
		C.llama_set_causal_attn(x.c, C.bool(causal))
	}
}

// Abort sets the context's abort flag: a running Decode stops (on the CPU
// backend) and every later Decode returns ErrCancelled until ClearAbort. It
// may be called from any goroutine at any time, also during or after Free
// (then it does nothing).
func (x *LlamaContext) Abort() { x.setAbort(1) }

// ClearAbort resets the flag set by Abort. Like Abort it is safe at any time.
func (x *LlamaContext) ClearAbort() { x.setAbort(0) }

func (x *LlamaContext) setAbort(v int32) {
	if x == nil {
		return
	}
	x.abortMu.Lock()
	if x.abort != nil {
		atomic.StoreInt32((*int32)(unsafe.Pointer(x.abort)), v)
	}
	x.abortMu.Unlock()
}

// Decode runs the model on a batch. Errors: ErrContextFull (no KV slot),
// ErrCancelled (Abort was called), ErrInvalidArgument (bad batch), ErrDecode.
func (x *LlamaContext) Decode(b *Batch) error {
	if !x.Valid() || !b.valid() {
		return ErrClosed
	}
	if b.c.n_tokens <= 0 {
		return fmt.Errorf("empty batch: %w", ErrInvalidArgument)
	}
	if b.nEmbd > 0 && b.c.embd != nil && b.nEmbd != x.model.NEmbdInput() {
		return fmt.Errorf("batch of %d-wide embeddings for a model taking %d: %w", b.nEmbd, x.model.NEmbdInput(), ErrInvalidArgument)
	}
	x.outputs, x.nOutputs = x.outputs[:0], 0
	var cerr C.vlm_cxx_err
	rc := int(C.vlm_cxx_decode(x.c, b.c, &cerr))
	runtime.KeepAlive(b)
	if err := cxxError("llama_decode", &cerr); err != nil {
		return err
	}
	switch {
	case rc == 0:
		for _, l := range unsafe.Slice(b.c.logits, int(b.c.n_tokens)) {
			x.outputs = append(x.outputs, l != 0)
			if l != 0 {
				x.nOutputs++
			}
		}
		return nil
	case rc == 1:
		return &CodeError{Func: "llama_decode", Code: rc, Err: ErrContextFull}
	case rc == 2:
		return &CodeError{Func: "llama_decode", Code: rc, Err: ErrCancelled}
	case rc == -1:
		return &CodeError{Func: "llama_decode", Code: rc, Err: ErrInvalidArgument}
	}
	return &CodeError{Func: "llama_decode", Code: rc, Err: ErrDecode}
}

// Logits returns a copy of the logits of output i of the last Decode (i is
// the index in the batch of a token whose logits flag was set; -1 means the
// last output).
func (x *LlamaContext) Logits(i int) ([]float32, error) { return x.LogitsInto(i, nil) }

// LogitsInto is Logits appending to dst[:0] (reusing its memory when it is
// large enough): a decode loop that reads every step's logits then makes
// no garbage for Go's collector.
func (x *LlamaContext) LogitsInto(i int, dst []float32) ([]float32, error) {
	if !x.Valid() {
		return nil, ErrClosed
	}
	if !x.hasOutput(i) {
		return nil, fmt.Errorf("no logits for output %d of the last decode (%d outputs): %w", i, x.nOutputs, ErrInvalidArgument)
	}
	p := C.llama_get_logits_ith(x.c, C.int32_t(i))
	if p == nil {
		return nil, fmt.Errorf("no logits for output %d: %w", i, ErrInvalidArgument)
	}
	return append(dst[:0], unsafe.Slice((*float32)(unsafe.Pointer(p)), x.nVocab)...), nil
}

// Embeddings returns a copy of the embedding of output i of the last Decode
// (the context must have been made with Embeddings set).
func (x *LlamaContext) Embeddings(i int) ([]float32, error) {
	if !x.Valid() {
		return nil, ErrClosed
	}
	if !x.hasOutput(i) {
		return nil, fmt.Errorf("no embeddings for output %d of the last decode (%d outputs): %w", i, x.nOutputs, ErrInvalidArgument)
	}
	p := C.llama_get_embeddings_ith(x.c, C.int32_t(i))
	if p == nil {
		return nil, fmt.Errorf("no embeddings for output %d: %w", i, ErrInvalidArgument)
	}
	return append([]float32(nil), unsafe.Slice((*float32)(unsafe.Pointer(p)), x.model.NEmbd())...), nil
}

// hasOutput reports whether output i (negative: from the end) exists.
func (x *LlamaContext) hasOutput(i int) bool {
	if !x.Valid() {
		return false
	}
	if i < 0 {
		return x.nOutputs+i >= 0
	}
	return i < len(x.outputs) && x.outputs[i]
}

// HasOutput reports whether Logits(i) would find an output of the last
// Decode (i < 0 counts from the last output).
func (x *LlamaContext) HasOutput(i int) bool { return x.hasOutput(i) }

// Synchronize waits for pending backend work.
func (x *LlamaContext) Synchronize() {
	if x.Valid() {
		C.llama_synchronize(x.c)
	}
}

// Memory operations on the KV cache (llama_memory_*). Positions p0, p1
// select [p0, p1); negative values mean "from the start" and "to the end".
func (x *LlamaContext) mem() C.llama_memory_t { return C.llama_get_memory(x.c) }

// validSeq reports whether seq is a sequence id of this context; llama.cpp
// asserts (aborts) on others. A freed context has none.
func (x *LlamaContext) validSeq(seq int32) bool { return seq >= 0 && int(seq) < x.NSeqMax() }

// MemoryClear empties the KV cache; data also zeroes the buffers.
func (x *LlamaContext) MemoryClear(data bool) {
	if !x.Valid() {
		return
	}
	C.llama_memory_clear(x.mem(), C.bool(data))
	x.outputs, x.nOutputs = x.outputs[:0], 0
}

// MemorySeqRemove removes positions [p0, p1) of sequence seq (seq < 0: all
// sequences). It returns false if a partial removal is impossible.
func (x *LlamaContext) MemorySeqRemove(seq, p0, p1 int32) bool {
	if !x.Valid() || seq >= 0 && !x.validSeq(seq) {
		return false
	}
	return bool(C.llama_memory_seq_rm(x.mem(), C.llama_seq_id(seq), C.llama_pos(p0), C.llama_pos(p1)))
}

// MemorySeqCopy copies positions [p0, p1) of sequence src to dst.
func (x *LlamaContext) MemorySeqCopy(src, dst, p0, p1 int32) {
	if !x.validSeq(src) || !x.validSeq(dst) {
		return
	}
	C.llama_memory_seq_cp(x.mem(), C.llama_seq_id(src), C.llama_seq_id(dst), C.llama_pos(p0), C.llama_pos(p1))
}

// MemorySeqKeep removes every sequence but seq.
func (x *LlamaContext) MemorySeqKeep(seq int32) {
	if x.validSeq(seq) {
		C.llama_memory_seq_keep(x.mem(), C.llama_seq_id(seq))
	}
}

// MemorySeqAdd shifts positions [p0, p1) of sequence seq by delta. It is
// refused for M-RoPE models (llama.cpp asserts on them).
func (x *LlamaContext) MemorySeqAdd(seq, p0, p1, delta int32) error {
	if !x.Valid() {
		return ErrClosed
	}
	if !x.validSeq(seq) {
		return fmt.Errorf("sequence %d: %w", seq, ErrInvalidArgument)
	}
	if x.model.PositionsPerToken() != 1 {
		return fmt.Errorf("shifting positions of an M-RoPE model: %w", ErrInvalidArgument)
	}
	C.llama_memory_seq_add(x.mem(), C.llama_seq_id(seq), C.llama_pos(p0), C.llama_pos(p1), C.llama_pos(delta))
	return nil
}

// MemorySeqPosMin returns the smallest position of seq, -1 if it is empty.
func (x *LlamaContext) MemorySeqPosMin(seq int32) int32 {
	if !x.validSeq(seq) {
		return -1
	}
	return int32(C.llama_memory_seq_pos_min(x.mem(), C.llama_seq_id(seq)))
}

// MemorySeqPosMax returns the largest position of seq, -1 if it is empty.
func (x *LlamaContext) MemorySeqPosMax(seq int32) int32 {
	if !x.validSeq(seq) {
		return -1
	}
	return int32(C.llama_memory_seq_pos_max(x.mem(), C.llama_seq_id(seq)))
}

// MemoryCanShift reports whether positions can be shifted (MemorySeqAdd).
func (x *LlamaContext) MemoryCanShift() bool {
	return x.Valid() && bool(C.llama_memory_can_shift(x.mem()))
}

// PerfData are llama.cpp's performance counters of a context.
type PerfData struct {
	LoadMs       float64 // time to load the model
	PromptEvalMs float64 // time spent on prompt batches
	EvalMs       float64 // time spent on single-token steps
	PromptTokens int     // tokens evaluated in prompt batches
	EvalTokens   int     // tokens evaluated one at a time
	GraphReused  int     // times a compute graph was reused
}

// Perf returns the context's performance counters.
func (x *LlamaContext) Perf() PerfData {
	if !x.Valid() {
		return PerfData{}
	}
	d := C.llama_perf_context(x.c)
	return PerfData{
		LoadMs: float64(d.t_load_ms), PromptEvalMs: float64(d.t_p_eval_ms), EvalMs: float64(d.t_eval_ms),
		PromptTokens: int(d.n_p_eval), EvalTokens: int(d.n_eval), GraphReused: int(d.n_reused),
	}
}

// PerfReset zeroes the performance counters.
func (x *LlamaContext) PerfReset() {
	if x.Valid() {
		C.llama_perf_context_reset(x.c)
	}
}

// Batch is a batch of tokens or embeddings for Decode. Its arrays live in C
// memory owned by the Batch; Free releases them.
type Batch struct {
	c         C.struct_llama_batch
	capacity  int
	nEmbd     int
	nSeqMax   int
	posPerTok int
	seqFlat   *C.llama_seq_id
}

// NewBatch allocates a batch of up to capacity tokens. With nEmbd > 0 it
// holds embeddings of that width instead of token ids. posPerToken is 1, or
// 4 for models with multi-dimensional (M-RoPE) positions.
func NewBatch(capacity, nEmbd, nSeqMax, posPerToken int) (*Batch, error) {
	if capacity <= 0 || capacity > 1<<24 || nEmbd < 0 || nSeqMax <= 0 || nSeqMax > 1<<12 || (posPerToken != 1 && posPerToken != 4) {
		return nil, fmt.Errorf("batch capacity %d, nEmbd %d, nSeqMax %d, posPerToken %d: %w",
			capacity, nEmbd, nSeqMax, posPerToken, ErrInvalidArgument)
	}
	b := &Batch{capacity: capacity, nEmbd: nEmbd, nSeqMax: nSeqMax, posPerTok: posPerToken}
	n := C.size_t(capacity)
	if nEmbd > 0 {
		b.c.embd = (*C.float)(C.calloc(n*C.size_t(nEmbd), 4))
	} else {
		b.c.token = (*C.llama_token)(C.calloc(n, 4))
	}
	b.c.pos = (*C.llama_pos)(C.calloc(n*C.size_t(posPerToken), 4))
	b.c.n_seq_id = (*C.int32_t)(C.calloc(n, 4))
	b.c.seq_id = (**C.llama_seq_id)(C.calloc(n+1, C.size_t(unsafe.Sizeof(uintptr(0)))))
	b.c.logits = (*C.int8_t)(C.calloc(n, 1))
	b.seqFlat = (*C.llama_seq_id)(C.calloc(n*C.size_t(nSeqMax), 4))
	if b.c.token == nil && b.c.embd == nil || b.c.pos == nil || b.c.n_seq_id == nil || b.c.seq_id == nil ||
		b.c.logits == nil || b.seqFlat == nil {
		b.free()
		return nil, fmt.Errorf("out of C memory for a batch of %d × %d: %w", capacity, max(nEmbd, 1), ErrInvalidArgument)
	}
	ptrs := unsafe.Slice(b.c.seq_id, capacity)
	flat := unsafe.Slice(b.seqFlat, capacity*nSeqMax)
	for i := range ptrs {
		ptrs[i] = &flat[i*nSeqMax]
	}
	return b, nil
}

// Free releases the batch's C memory. Later calls return ErrClosed, or
// zero values where a method has no error result.
func (b *Batch) Free() {
	if !b.valid() {
		return
	}
	b.free()
}

// valid reports whether the batch exists and is not freed.
func (b *Batch) valid() bool { return b != nil && b.c.pos != nil }

func (b *Batch) free() {
	C.free(unsafe.Pointer(b.c.token))
	C.free(unsafe.Pointer(b.c.embd))
	C.free(unsafe.Pointer(b.c.pos))
	C.free(unsafe.Pointer(b.c.n_seq_id))
	C.free(unsafe.Pointer(b.c.seq_id))
	C.free(unsafe.Pointer(b.c.logits))
	C.free(unsafe.Pointer(b.seqFlat))
	b.c = C.struct_llama_batch{}
	b.seqFlat = nil
	b.capacity = 0
}

// Len returns the number of tokens in the batch.
func (b *Batch) Len() int {
	if !b.valid() {
		return 0
	}
	return int(b.c.n_tokens)
}

// Cap returns the batch's capacity.
func (b *Batch) Cap() int {
	if !b.valid() {
		return 0
	}
	return b.capacity
}

// Clear empties the batch.
func (b *Batch) Clear() {
	if b.valid() {
		b.c.n_tokens = 0
	}
}

// Add appends a token at position pos in the given sequences; logits asks
// for its output. The argument order is llama.Batch.Add's.
func (b *Batch) Add(t Token, pos int32, logits bool, seqs ...int32) error {
	if !b.valid() {
		return ErrClosed
	}
	if b.c.token == nil {
		return fmt.Errorf("Add on an embedding batch or a freed one: %w", ErrInvalidArgument)
	}
	i := int(b.c.n_tokens)
	if i >= b.capacity {
		return fmt.Errorf("batch full (%d tokens): %w", b.capacity, ErrInvalidArgument)
	}
	unsafe.Slice(b.c.token, b.capacity)[i] = C.llama_token(t)
	if err := b.setMeta(i, pos, seqs, logits); err != nil {
		return err
	}
	b.c.n_tokens++
	return nil
}

func (b *Batch) setMeta(i int, pos int32, seqs []int32, logits bool) error {
	if len(seqs) == 0 || len(seqs) > b.nSeqMax {
		return fmt.Errorf("%d sequence ids for a batch of at most %d: %w", len(seqs), b.nSeqMax, ErrInvalidArgument)
	}
	unsafe.Slice(b.c.pos, b.capacity*b.posPerTok)[i] = C.llama_pos(pos)
	unsafe.Slice(b.c.n_seq_id, b.capacity)[i] = C.int32_t(len(seqs))
	flat := unsafe.Slice(b.seqFlat, b.capacity*b.nSeqMax)
	for k, s := range seqs {
		flat[i*b.nSeqMax+k] = C.llama_seq_id(s)
	}
	var l C.int8_t
	if logits {
		l = 1
	}
	unsafe.Slice(b.c.logits, b.capacity)[i] = l
	return nil
}

// SetEmbeddings fills the batch with len(embd)/nEmbd embeddings at positions
// pos0, pos0+1, ... in sequence seq, replacing its content. Outputs are
// requested for none of them unless lastLogits is set.
func (b *Batch) SetEmbeddings(embd []float32, pos0 int32, seq int32, lastLogits bool) error {
	if !b.valid() {
		return ErrClosed
	}
	if b.c.embd == nil || b.nEmbd == 0 {
		return fmt.Errorf("SetEmbeddings on a token batch or a freed one: %w", ErrInvalidArgument)
	}
	if len(embd)%b.nEmbd != 0 || len(embd)/b.nEmbd > b.capacity || len(embd) == 0 {
		return fmt.Errorf("%d floats for a batch of %d × %d: %w", len(embd), b.capacity, b.nEmbd, ErrInvalidArgument)
	}
	n := len(embd) / b.nEmbd
	copy(unsafe.Slice((*float32)(unsafe.Pointer(b.c.embd)), b.capacity*b.nEmbd), embd)
	for i := 0; i < n; i++ {
		if err := b.setMeta(i, pos0+int32(i), []int32{seq}, lastLogits && i == n-1); err != nil {
			return err
		}
	}
	b.c.n_tokens = C.int32_t(n)
	return nil
}

// SetPositions overwrites the positions of the batch's tokens. For an M-RoPE
// batch pos holds 4 planes of Len() values each (temporal, y, x, unused).
func (b *Batch) SetPositions(pos []int32) error {
	if !b.valid() {
		return ErrClosed
	}
	if len(pos) != b.Len()*b.posPerTok {
		return fmt.Errorf("%d positions for %d tokens × %d: %w", len(pos), b.Len(), b.posPerTok, ErrInvalidArgument)
	}
	dst := unsafe.Slice(b.c.pos, b.capacity*b.posPerTok)
	for i, p := range pos {
		dst[i] = C.llama_pos(p)
	}
	return nil
}
