// Package llama is the Go-idiomatic side of llama.cpp's text models: load a
// GGUF model, read its metadata and chat template, tokenize and detokenize,
// create contexts, decode batches, manage the KV cache, quantize to Q8_0.
//
// Every handle (Model, Context, Batch) has an idempotent Close, a
// runtime.AddCleanup safety net, and returns ErrClosed when used after
// Close. A Model may be shared by many goroutines and contexts; a Context is
// for one goroutine at a time and returns ErrConcurrentUse when two calls
// overlap. A Context keeps its Model alive: closing the Model while contexts
// are open frees it when the last of them closes.
//
// Model files are checked with package gguf before llama.cpp sees them, since
// the pinned llama.cpp aborts the whole process on several kinds of malformed
// file; such files get an error wrapping ErrInvalidModel instead.
package llama
