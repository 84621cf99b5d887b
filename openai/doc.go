// Package openai serves the OpenAI chat completions API over a pipeline:
// an http.Handler to mount in a Go service, and what cmd/vlm-server runs.
//
//	p, _ := pipeline.New(ctx, "model.gguf", "mmproj.gguf", pipeline.Options{Sequences: 4})
//	http.Handle("/", openai.NewHandler(p, openai.Options{APIKey: os.Getenv("VLM_API_KEY")}))
//
// POST /v1/chat/completions takes messages with string or parts content
// (text, image_url with data: URLs; http(s) URLs only from allowed hosts
// when Options.RemoteImages is on), max_tokens / max_completion_tokens,
// temperature, top_p, seed, stop, frequency/presence penalties, stream
// (server-sent events ending in "data: [DONE]", stream_options.include_usage)
// and response_format json_object or json_schema (a JSON schema becomes a
// GBNF grammar for the sampler through package sampler/jsonschema, whose doc
// lists the keywords it supports; a schema it refuses is a 400 naming the
// keyword), logit_bias, logprobs with top_logprobs and n (several choices
// from one prefill; see choices.go for the limits and the
// log-probabilities' definition), and tools (tools, tool_choice none, auto,
// required or a named function, parallel_tool_calls, tool-role messages and
// assistant tool_calls in the history; see package toolcall for how each
// model family's template lays them out and how calls are constrained and
// parsed; answers carry tool_calls and finish_reason "tool_calls", streamed
// as tool_calls deltas). Fields that would change the answer and are not
// implemented (functions, audio) get a 400 that names them. POST
// /v1/completions takes the same sampling fields, n and the legacy
// logprobs (an int, 0–20). Errors come in OpenAI's shape
// {"error": {"message", "type", "param", "code"}}: 400 for a bad request,
// image or a prompt too long (code context_length_exceeded), 401 for a
// missing or wrong key, 413 for a body too large or images that need more
// memory to decode than a request may take (code image_too_large, naming
// the figures), 429 when the engine's queue is full or images waited for the
// process's image memory until the request's deadline, 503 while draining; a client that disconnects frees its
// sequence at once (499 in the metrics).
//
// GET /v1/models, /healthz, /readyz and /metrics (Prometheus: requests by
// path and status, queue depth, active sequences, tokens in and out, time
// to first token and per-token latency, image cache hits, bodies cut off)
// complete it for a load balancer and an operator.
//
// The handler trusts no client. Cheap checks come before expensive work:
// the API key, draining, the declared body size and the admission check
// (Options.MaxInFlight, the engine's queue: 429) before the body is read;
// the body within Options.BodyTimeout (408 and counted when slower); its
// JSON; only then remote images, grammars, decoding and tokens. Metric
// labels come from fixed sets (unknown paths are "other"), so probes
// create no series. Remote images are fetched from allowed hosts only,
// every redirect hop included, from public addresses only unless
// Options.AllowPrivateAddresses, connecting to the address that was
// checked. Messages, content parts and stop strings are bounded.
package openai
