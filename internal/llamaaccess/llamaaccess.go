// Package llamaaccess gives the packages of this module that sit beside
// llama (mtmd, sampler) what llama keeps out of its public API: the native
// handles of its models and contexts and the model's reference count. A
// user holding a native handle could free a model under live contexts;
// here only this module can reach them.
//
// Package llama sets the functions in its init; they take *llama.Model and
// *llama.Context as any (this package cannot import llama).
package llamaaccess

import "github.com/vlm-go/vlm"

var (
	// ModelNative runs f with m's native model while it is open (ErrClosed
	// after Close); f must not keep the handle.
	ModelNative func(m any, f func(*vlm.LlamaModel) error) error
	// Acquire records a child (a projector, a sampler) that uses m: m is
	// freed only after every child has called Release.
	Acquire func(m any) error
	// Release undoes one Acquire.
	Release func(m any)
	// ContextNative runs f with x's native context while it is held (the
	// context is for one goroutine at a time: overlapping use is refused);
	// f must not keep the handle.
	ContextNative func(x any, f func(*vlm.LlamaContext) error) error
)
