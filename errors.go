package vlm

import (
	"errors"
	"fmt"
	"github.com/vlm-go/vlm/internal/errkind"
)

// Errors returned by the binding. Test for them with errors.Is.
var (
	// ErrClosed: the handle was freed or closed before this call.
	ErrClosed = errors.New("vlm: use of a closed handle")
	// ErrLoad: llama.cpp or mtmd could not load a file (its log says why).
	ErrLoad = errors.New("vlm: load failed")
	// ErrCancelled: a callback or context asked to stop.
	ErrCancelled = errors.New("vlm: cancelled")
	// ErrContextFull: the context has no room for the batch (KV cache full).
	ErrContextFull = errors.New("vlm: context full")
	// ErrInvalidArgument: an argument is out of range (an unknown token id,
	// an empty batch, a sequence id the context does not have, ...). It is
	// also the kind of every package's own "bad argument" sentinel —
	// engine.ErrInvalidRequest and ErrInvalidOptions, pipeline.ErrInvalidInput
	// and ErrInvalidOptions, sampler.ErrInvalidConfig,
	// template.ErrInvalidMessage, mtmd.ErrInvalidImage, the JSON-schema
	// converter's errors — so errors.Is(err, vlm.ErrInvalidArgument) tells a
	// caller's mistake from a failure at any layer.
	ErrInvalidArgument = errkind.ErrInvalidArgument
	// ErrDecode: llama_decode or mtmd_encode failed for another reason.
	ErrDecode = errors.New("vlm: decode failed")
	// ErrVocabOnly: the model was loaded with VocabOnly (vocabulary and
	// metadata, no weights) and the call needs weights: a context, a
	// projector, per-layer hyperparameters. Load the model without VocabOnly.
	ErrVocabOnly = errors.New("vlm: model loaded vocab-only (no weights)")
	// ErrNativeException: llama.cpp or mtmd threw a C++ exception (a
	// character the tokenizer cannot cover, a corrupt tokenizer table, a
	// grammar in an impossible state). The binding catches it, so the
	// process goes on; the error carries what() and the function.
	ErrNativeException = errors.New("vlm: llama.cpp threw a C++ exception")
	// ErrNonFinite: the model computed NaN or infinite logits — broken
	// weights or hyperparameters (a zero RoPE base, NaN weights): every
	// answer would be the same token forever.
	ErrNonFinite = errors.New("vlm: the model computed NaN or infinite logits")
)

// CodeError carries the status code a C function returned, wrapped around
// one of the sentinel errors above.
type CodeError struct {
	Func string // the C function, e.g. "llama_decode"
	Code int    // its return value
	Err  error  // the class: ErrContextFull, ErrDecode, ErrCancelled, ...
}

// Error returns a message naming the function, its code and the class.
func (e *CodeError) Error() string {
	return fmt.Sprintf("%s returned %d: %v", e.Func, e.Code, e.Err)
}

// Unwrap returns the class of the error.
func (e *CodeError) Unwrap() error { return e.Err }
