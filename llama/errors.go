package llama

import (
	"errors"

	"github.com/vlm-go/vlm"
)

// Errors of this package; test for them with errors.Is.
var (
	// ErrClosed: the handle was closed.
	ErrClosed = vlm.ErrClosed
	// ErrNonFinite: the model computed NaN or infinite logits (broken
	// weights or hyperparameters); sampling stops with it.
	ErrNonFinite = vlm.ErrNonFinite
	// ErrNativeException: llama.cpp threw a C++ exception, caught by vlm.
	ErrNativeException = vlm.ErrNativeException
	// ErrNotFound: the model file does not exist (also matches fs.ErrNotExist).
	ErrNotFound = errors.New("llama: model file not found")
	// ErrInvalidModel: the file is not a GGUF model llama.cpp can load safely
	// (not GGUF, truncated, malformed in a way that would abort llama.cpp).
	ErrInvalidModel = errors.New("llama: invalid model file")
	// ErrUnsupportedArchitecture: llama.cpp does not know the architecture.
	ErrUnsupportedArchitecture = errors.New("llama: unsupported model architecture")
	// ErrLoad: llama.cpp failed to load the model or create a context.
	ErrLoad = vlm.ErrLoad
	// ErrCancelled: the context.Context was cancelled or a callback stopped the work.
	ErrCancelled = vlm.ErrCancelled
	// ErrContextFull: the KV cache has no room for more tokens.
	ErrContextFull = vlm.ErrContextFull
	// ErrPromptTooLong: the input does not fit in the context.
	ErrPromptTooLong = errors.New("llama: prompt longer than the context")
	// ErrInvalidArgument: an argument is out of range (an unknown token id, a
	// bad option, ...).
	ErrInvalidArgument = vlm.ErrInvalidArgument
	// ErrConcurrentUse: two goroutines used one Context at the same time.
	ErrConcurrentUse = errors.New("llama: context used by two goroutines at once")
	// ErrDecode: llama.cpp failed to evaluate a batch.
	ErrDecode = vlm.ErrDecode
	// ErrVocabOnly: the model was loaded with LoadOptions.VocabOnly, so it
	// has a vocabulary and metadata but no weights, and the call needs them
	// (NewContext, mtmd.Load). Load the model without VocabOnly.
	ErrVocabOnly = vlm.ErrVocabOnly
)
