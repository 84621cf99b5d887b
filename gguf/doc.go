// Package gguf reads, writes and checks GGUF files, the container format of
// llama.cpp models and vision projectors (mmproj), in pure Go.
//
// The format follows the pinned ggml sources (ml/backend/ggml/ggml/src/gguf.cpp
// and include/gguf.h in github.com/ollama/ollama): a little-endian header
// ("GGUF", version, tensor count, KV count), the key/value metadata in file
// order, the tensor infos (name, dimensions in ggml order, type, offset), then
// the tensor data, each tensor's offset padded to the file's alignment
// (general.alignment, default 32).
//
// [Writer] builds a file deterministically: the same calls give byte-identical
// output. [Read] and [Open] parse a file without trusting it: every count and
// length is checked against the bytes that remain before anything is allocated
// for it, so a small file that claims huge counts fails fast with a
// [*FormatError]. [ValidateModel] and [ValidateProjector] check a parsed file
// for the mistakes that make the pinned llama.cpp or mtmd abort the whole
// process (GGUF-NOTES.md), returning [*ValidationError] values that callers
// tell apart with errors.Is and errors.As.
package gguf
