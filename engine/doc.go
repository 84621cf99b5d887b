// Package engine answers many requests at once with one llama context: a
// continuous-batching engine, what llama-server's slots and ollama's runner
// do, for Go.
//
// An Engine owns ONE llama.Context with Options.Sequences sequences in a
// unified KV cache and one scheduler goroutine. Each step the scheduler
// builds one batch: the next token of every decoding sequence plus a chunk
// of every waiting prompt's text, within the context's batch size; it
// decodes once (the weights are read once for all sequences) and samples
// each sequence with its own sampler chain. Image chunks are decoded as
// their own steps (a llama batch holds tokens or embeddings, and
// non-causal projectors need the whole image in one batch with causal
// attention off); their embeddings are computed by an encoder goroutine
// off the decode loop, so that encoding one large image never stalls the
// other streams for longer than one step.
//
// Requests arrive with Submit as tokenized prompts (mtmd.Chunks) and come
// back as a Stream of tokens. A slow reader stalls only its own sequence
// (each stream has a bounded buffer); cancelling a request's context
// removes its sequence between steps; Close ends every waiter with
// ErrClosed, Shutdown answers them first and refuses new ones
// (ErrShuttingDown). Perf reads llama.cpp's counters between steps.
//
// Admission: a request waits for a free sequence and room in the KV cache
// (a bounded queue; beyond it Submit returns ErrOverloaded, which a server
// maps to 429 or 503); one that can never fit gets llama.ErrPromptTooLong at
// once. A full sequence ends its answer with llama.StopCacheFull, not an
// error.
//
// Prefix reuse: every sequence keeps what it holds after its request ends.
// A new request whose prompt shares a prefix with any sequence — its
// system prompt, the same picture, an earlier turn of the same chat —
// starts from it: in place when that sequence is free, else by sharing the
// prefix's KV cells (llama_memory_seq_cp), so the prefix is not evaluated
// again. With the image cache of package mtmd (mtmd.ImageCache, passed to
// Tokenize) a picture asked about again is neither preprocessed nor
// encoded.
//
// Package pipeline runs every Run, Stream, RunBatch and Session call
// through an Engine; use this package directly for a server of your own
// design.
package engine
