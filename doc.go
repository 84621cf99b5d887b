// Package vlm is the low layer of vlm: the thin cgo binding over llama.cpp,
// ggml and llama.cpp's multimodal library (mtmd), and the only package that
// imports "C". Most programs should not use it directly.
//
// # Where to start
//
// To answer questions about pictures, import [github.com/vlm-go/vlm/pipeline]:
// one call loads a model and its projector, and Run, Stream, RunBatch and
// sessions answer — batched across goroutines, with images cached, bad
// input refused with clear errors and every native handle freed for you. Its
// Example functions are the shortest path from `go get` to an answer. The
// packages in between — llama (models, contexts, generation), mtmd
// (projectors, images, chunks), sampler, template and engine — are for
// programs that need one of those parts on its own; openai serves a
// pipeline over HTTP.
//
// # What this package is
//
// It compiles llama.cpp, ggml and mtmd from the pinned
// github.com/ollama/ollama module, initialises the backends once per
// process, routes their log output into log/slog, and wraps the C API close
// to 1:1: the types are handles to C objects (LlamaModel, LlamaContext,
// MtmdContext, Bitmap, InputChunks, SamplerChain) and the parameter structs keep
// llama.cpp's names (ContextParams.NCtx is n_ctx). Its rules are the C
// API's:
//
//   - A handle is for one goroutine at a time. Nothing here locks; the
//     packages above do.
//   - You free what you create, in order: a model must outlive its
//     contexts, projectors and samplers. This package does not count
//     references (package llama does), so freeing a model under a live
//     context is a use-after-free in C, not an error here.
//   - Calls on a freed handle return ErrClosed; calls the C side can make
//     throw (tokenizers, grammars, graph builders) return
//     ErrNativeException instead of ending the process. What the pinned
//     llama.cpp aborts on — malformed files above all — is checked by the
//     packages above before they call down (package gguf, isolate).
//
// Building needs cgo and a C/C++ compiler, nothing else; see the README.
// Names and meanings shared by every package (sequences, context size,
// threads, GPU layers, errors) are listed in the README's "One vocabulary"
// table.
package vlm
