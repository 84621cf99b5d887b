// Package pipeline is vlm's one-call image-text-to-text API: what the
// Hugging Face guide's pipeline("image-text-to-text") is in Python.
//
// New loads a text model and its vision projector once (optionally
// converting the weights to 8-bit Q8_0 first); Run answers one input —
// images plus text, or a whole chat — with the generated text
// (ReturnFullText is off by default, as in transformers); Stream yields the
// answer token by token; RunBatch answers several inputs. A Session keeps a
// conversation, and each turn evaluates only what the KV cache does not
// hold yet.
//
// Every call goes through one batching engine (package engine): one llama
// context whose Options.Sequences sequences are decoded together, one batch
// per step, so concurrent calls from many goroutines share the weights'
// reads and the CPU threads instead of fighting over them. A new prompt
// starts from the longest prefix any sequence holds (a system prompt, a
// picture, a chat's earlier turns).
//
// Every image the pipeline prepares (mtmd's resizing and tiling, and the
// vision encoder's output for each tile) is kept in one image cache shared
// by Run, Stream, RunBatch and sessions (Options.ImageCacheBytes, LRU): asking
// again about a picture neither preprocesses nor encodes it, and with the
// KV prefix still in the context only the new question is evaluated.
// Stats.ImageCacheHits/Misses and Pipeline.ImageCacheStats count it.
//
// Images sent as files or bytes are decoded within bounded memory: each
// image's decode cost is read from its header first (what Go's decoder
// allocates: 4 bytes a pixel for an 8-bit PNG, 8 for 16-bit, …); a
// request's images over Options.MaxImageBytes fail at once with an
// *mtmd.ImageMemoryError (ErrImageTooLarge), the others decode one at a
// time, each taking its bytes from the process's image memory
// (Options.ImageMemory; waiting past the request's deadline fails with
// ErrImageMemoryBusy), and each is reduced to what the projector uses
// (Projector.ImagePixels) before the next, so a 49-megapixel picture is
// kept as one of a few megapixels.
//
// Prompts are laid out with the model's own Jinja chat template (package
// template), each image at its place.
//
// GenerateOptions.Tools offers the model functions to call (package
// toolcall): the tools, and the calls and results of the history
// (toolcall.AssistantCalls, toolcall.Result), go through the template's
// own tools variable where it has one, else a generic format; a required
// or named choice is forced by a grammar built from the parameters' JSON
// schemas, auto by a lazy grammar at the family's call marker; the calls
// come back parsed in Response.ToolCalls.
//
// # Crash containment
//
// With Options.Process set to ChildProcess the model, projector, engine and
// image cache live in a child process of the program (re-executed as
// package isolate does: call isolate.Main() first thing in main), and the
// Pipeline keeps the whole API: Run, Stream, RunBatch, sessions (their
// history stays in the parent), Stats, EngineStats, ImageCacheStats,
// cancellation and ErrOverloaded. Images are decoded in the parent, within
// its image memory, and cross as RGB pixels; requests and tokens cross a
// Unix socket pair in small length-prefixed frames. The parent runs no
// llama.cpp code at request time.
//
// When the child dies — a segfault in a kernel, a GGML_ASSERT's abort,
// SIGKILL from the OOM killer or an operator, or a hang that its heartbeat
// reveals — every request in flight ends at once with a *CrashError
// (errors.Is(err, ErrChildCrashed); it carries the signal, the stage the
// request was in, and the child's last llama.cpp log lines), the child is
// restarted after a backoff, and requests arriving meanwhile wait for it
// within their context (or get ErrOverloaded when MaxWaiting are already
// waiting). Ready reports the state, for a readiness probe. Deaths past
// Supervisor.CrashLoopDeaths within Supervisor.CrashLoopWindow stop the
// restarts: calls then fail with ErrCrashLoop. A session's next turn after a
// restart is rebuilt from its history.
//
// The cost, measured with cmd/vlm-bench -isolation (SmolVLM-256M shapes,
// Q8_0, 2 threads, on a shared machine): the aggregate decode speed of 8
// streams at parity (1.006×–1.009×), one stream's within the machine's
// noise (0.94×–1.07×), under a millisecond of time to first token outside
// the prefill, and a parent of 26–35 MiB resident.
package pipeline
