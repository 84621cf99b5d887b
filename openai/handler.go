package openai

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/subtle"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"iter"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/vlm-go/vlm/llama"
	"github.com/vlm-go/vlm/pipeline"
)

// Options configure NewHandler. The zero value has safe limits and no
// API key.
type Options struct {
	// ModelName is the model's id in responses and /v1/models; empty means
	// the model file's name without ".gguf".
	ModelName string
	// APIKey, if set, is required in every /v1 request as
	// "Authorization: Bearer KEY" (health, readiness and metrics are open).
	APIKey string
	// MaxBodyBytes bounds a request body; 0 means 32 MiB.
	MaxBodyBytes int64
	// MaxImages bounds the images of one request; 0 means 8.
	MaxImages int
	// MaxTokens bounds max_tokens, and is the answer length when a request
	// gives none; 0 means 4096.
	MaxTokens int
	// RequestTimeout bounds one request; 0 means 10 minutes.
	RequestTimeout time.Duration
	// RemoteImages allows image_url with http(s) URLs from AllowedHosts
	// (exact host names); off by default: only data: URLs are read.
	RemoteImages bool
	// AllowedHosts are the hosts remote images may come from.
	AllowedHosts []string
	// RemoteImageBytes bounds a remote image; 0 means 20 MiB.
	RemoteImageBytes int64
	// RemoteImageTimeout bounds fetching a remote image; 0 means 10 s.
	RemoteImageTimeout time.Duration
	// AllowPrivateAddresses lets remote images come from loopback, private,
	// link-local and other non-public addresses (a test server, an image
	// store inside the cluster). Off by default: an allowed host name that
	// resolves to such an address is refused, so that the server cannot be
	// made to reach its own network (SSRF).
	AllowPrivateAddresses bool
	// HTTPClient fetches remote images; nil means vlm's client: it
	// resolves each host once, refuses non-public addresses (unless
	// AllowPrivateAddresses), connects to the address it checked, uses no
	// proxy and gives up after RemoteImageTimeout. Every redirect must lead
	// to an allowed host, whichever client fetches; a client of your own
	// keeps its transport, and guarding its addresses is then yours.
	HTTPClient *http.Client
	// BodyTimeout bounds reading a request body, from the moment the
	// handler starts: a body slower than that (a client trickling bytes)
	// is cut off with a 408 and counted in vlm_http_body_errors_total.
	// 0 means 30 s; -1 means no deadline.
	BodyTimeout time.Duration
	// WriteTimeout bounds writing a response: a client that stops reading
	// its answer is cut off RequestTimeout + WriteTimeout after its chat
	// request came (WriteTimeout alone for the other endpoints). The
	// handler sets the connection's write deadline at each request. 0
	// means 30 s; -1 leaves write deadlines to the http.Server.
	WriteTimeout time.Duration
	// MaxInFlight bounds the chat requests being prepared (images, grammar,
	// tokens), waiting and answered at once; beyond it a request gets 429
	// before any preparation. 0 means the pipeline's Capacity (Sequences +
	// MaxWaiting); -1 means no bound (the engine's queue still is one).
	MaxInFlight int
	// MaxMessages bounds the messages of one request, and the content
	// parts of one message; 0 means 1024.
	MaxMessages int
	// Logger logs each request's outcome; nil means slog.Default().
	Logger *slog.Logger
}

func (o Options) withDefaults(p *pipeline.Pipeline) Options {
	if o.ModelName == "" {
		o.ModelName = strings.TrimSuffix(filepath.Base(p.ModelPath()), ".gguf")
	}
	if o.MaxBodyBytes <= 0 {
		o.MaxBodyBytes = 32 << 20
	}
	if o.MaxImages <= 0 {
		o.MaxImages = 8
	}
	if o.MaxTokens <= 0 {
		o.MaxTokens = 4096
	}
	if o.RequestTimeout <= 0 {
		o.RequestTimeout = 10 * time.Minute
	}
	if o.RemoteImageBytes <= 0 {
		o.RemoteImageBytes = 20 << 20
	}
	if o.RemoteImageTimeout <= 0 {
		o.RemoteImageTimeout = 10 * time.Second
	}
	if o.BodyTimeout == 0 {
		o.BodyTimeout = 30 * time.Second
	}
	if o.WriteTimeout == 0 {
		o.WriteTimeout = 30 * time.Second
	}
	if o.MaxInFlight == 0 {
		o.MaxInFlight = p.Capacity()
	}
	if o.MaxMessages <= 0 {
		o.MaxMessages = 1024
	}
	hosts := make([]string, len(o.AllowedHosts))
	for i, host := range o.AllowedHosts {
		hosts[i] = strings.ToLower(host)
	}
	o.AllowedHosts = hosts
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	return o
}

// Handler serves the OpenAI chat API over a pipeline:
//
//	POST /v1/chat/completions   chat with images (data: URLs), streaming (SSE), JSON output
//	POST /v1/completions        raw text completion (no chat template), streaming
//	GET  /v1/models             the model
//	GET  /healthz               alive
//	GET  /readyz                accepting requests (503 once Drain is called, and while the
//	                            pipeline's model process restarts: pipeline.Pipeline.Ready)
//	GET  /metrics               Prometheus metrics
//
// Concurrent requests are batched by the pipeline's engine
// (pipeline.Options.Sequences sequences); beyond its queue a request gets
// 429. Errors come in OpenAI's shape with their status.
type Handler struct {
	p        *pipeline.Pipeline
	opts     Options
	mux      *http.ServeMux
	draining atomic.Bool
	inFlight atomic.Int64 // chat requests past the admission check
	created  int64
	reg      *prometheus.Registry
	m        *metrics
	client   *http.Client // fetches remote images
}

// NewHandler returns the OpenAI-compatible handler for p. The caller keeps
// p and closes it after the server has stopped.
func NewHandler(p *pipeline.Pipeline, opts Options) *Handler {
	h := &Handler{p: p, opts: opts.withDefaults(p), mux: http.NewServeMux(), created: time.Now().Unix()}
	h.reg = prometheus.NewRegistry()
	h.m = newMetrics(h.reg, p)
	registerGatewayMetrics(h.reg, p, h.opts.ModelName)
	// The process's own health: goroutines, heap, resident memory, open
	// files (what cmd/vlm-soak watches).
	h.reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	h.client = h.remoteClient()
	h.mux.HandleFunc("POST /v1/chat/completions", h.auth(h.chat))
	h.mux.HandleFunc("POST /v1/completions", h.auth(h.completions))
	h.mux.HandleFunc("GET /v1/models", h.auth(h.models))
	h.mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) { writeJSON(w, 200, map[string]string{"status": "ok"}) })
	h.mux.HandleFunc("GET /readyz", h.ready)
	h.mux.Handle("GET /metrics", promhttp.HandlerFor(h.reg, promhttp.HandlerOpts{}))
	return h
}

// ServeHTTP implements http.Handler. It sets the connection's deadlines
// for the request (Options.BodyTimeout, WriteTimeout) and counts it in
// the metrics, whose labels come from fixed sets.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	now := time.Now()
	path := pathLabel(r.URL.Path)
	rc := http.NewResponseController(w)
	if h.opts.BodyTimeout > 0 && r.ContentLength != 0 {
		// Also bounds the server's draining of a body the handler left
		// unread; chat clears it once it has read the body.
		_ = rc.SetReadDeadline(now.Add(h.opts.BodyTimeout))
	}
	if h.opts.WriteTimeout > 0 {
		d := h.opts.WriteTimeout
		if path == "/v1/chat/completions" || path == "/v1/completions" {
			d += h.opts.RequestTimeout
		}
		_ = rc.SetWriteDeadline(now.Add(d))
	}
	sw := &statusWriter{ResponseWriter: w}
	h.mux.ServeHTTP(sw, r)
	switch r.URL.Path {
	case "/healthz", "/readyz", "/metrics":
		return
	}
	status := sw.status
	if status == 0 {
		status = 200
	}
	if sw.clientGone {
		status = 499
	}
	h.m.requests.WithLabelValues(path, statusLabel(status)).Inc()
}

// Drain makes /readyz answer 503 (a load balancer stops sending requests)
// and new chat requests get 503; requests in flight go on.
func (h *Handler) Drain() { h.draining.Store(true) }

// Registry returns the handler's Prometheus registry (to add metrics of
// your own, or serve them elsewhere).
func (h *Handler) Registry() *prometheus.Registry { return h.reg }

func (h *Handler) ready(w http.ResponseWriter, r *http.Request) {
	if h.draining.Load() {
		writeJSON(w, http.StatusServiceUnavailable, map[string]string{"status": "draining"})
		return
	}
	// A pipeline whose model process is restarting (or stopped restarting)
	// is not ready.
	if err := h.p.Ready(); err != nil {
		status := "restarting"
		if errors.Is(err, pipeline.ErrCrashLoop) {
			status = "crash_loop"
		} else if errors.Is(err, pipeline.ErrClosed) {
			status = "closed"
		}
		w.Header().Set("Retry-After", "1")
		writeJSON(w, http.StatusServiceUnavailable, map[string]string{"status": status, "reason": err.Error()})
		return
	}
	writeJSON(w, 200, map[string]string{"status": "ready", "model": h.opts.ModelName})
}

func (h *Handler) auth(next http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if h.opts.APIKey != "" {
			got, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
			if !ok || subtle.ConstantTimeCompare([]byte(got), []byte(h.opts.APIKey)) != 1 {
				leaveBody(w, r)
				writeError(w, &apiError{status: 401, Type: "invalid_request_error", Code: "invalid_api_key",
					Message: "missing or wrong API key: send it as \"Authorization: Bearer KEY\""})
				return
			}
		}
		next(w, r)
	}
}

func (h *Handler) models(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, 200, map[string]any{"object": "list", "data": []map[string]any{
		{"id": h.opts.ModelName, "object": "model", "created": h.created, "owned_by": "vlm"},
	}})
}

func newID() string {
	var b [12]byte
	_, _ = rand.Read(b[:])
	return "chatcmpl-" + hex.EncodeToString(b[:])
}

// chat serves POST /v1/chat/completions. The cheap checks come first, so
// that a flood costs little: the API key (auth), draining, the declared
// body size and the admission check before the body is read; then the
// body (within BodyTimeout), its JSON, the admission slot; only then the
// expensive preparation (remote images, grammar) and the pipeline's
// (image decoding, tokens).
func (h *Handler) chat(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	data, ok := h.cheapChecksAndBody(w, r)
	if !ok {
		return
	}
	req, aerr := h.parse(data)
	if aerr != nil {
		writeError(w, aerr)
		return
	}
	if !h.admit() {
		writeError(w, h.overloaded())
		return
	}
	defer h.inFlight.Add(-1)
	ctx, cancel := context.WithTimeout(r.Context(), h.opts.RequestTimeout)
	defer cancel()
	in, gen, aerr := h.prepare(ctx, req)
	if aerr != nil {
		writeError(w, aerr)
		return
	}
	id := newID()
	if req.choices.special() {
		h.chatChoices(w, r, ctx, id, req, in, gen, start)
		return
	}
	req.choices.apply(&gen) // logit_bias
	st := h.p.Stream(ctx, in, gen)
	next, stop := iter.Pull2(st.Tokens())
	defer stop()
	// The first item decides the status: an error before any token is an
	// error response.
	tok, err, ok := next()
	if ok && err != nil {
		if r.Context().Err() != nil {
			markGone(w)
			return
		}
		writeError(w, mapError(err))
		return
	}
	if !req.Stream {
		var text strings.Builder
		for ok {
			if err != nil {
				if r.Context().Err() != nil {
					markGone(w)
					return
				}
				writeError(w, mapError(err))
				return
			}
			text.WriteString(tok.Text)
			tok, err, ok = next()
		}
		resp := st.Response()
		h.observe(resp, start)
		message, finish := answerMessage(resp, gen, text.String())
		writeJSON(w, 200, map[string]any{
			"id": id, "object": "chat.completion", "created": time.Now().Unix(), "model": h.opts.ModelName,
			"choices": []map[string]any{{
				"index": 0, "message": message,
				"finish_reason": finish, "logprobs": nil,
			}},
			"usage": usage(resp),
		})
		return
	}
	h.streamSSE(w, r, id, req, gen, st, tok, err, ok, next, start)
}

// full reports whether a chat request would be refused now: MaxInFlight
// requests are in flight, or the engine's queue is full.
func (h *Handler) full() bool {
	return (h.opts.MaxInFlight >= 0 && h.inFlight.Load() >= int64(h.opts.MaxInFlight)) || h.p.Overloaded()
}

// admit takes an in-flight slot, or reports false when none is left; the
// caller gives a slot back with h.inFlight.Add(-1).
func (h *Handler) admit() bool {
	if h.p.Overloaded() {
		return false
	}
	if n := h.inFlight.Add(1); h.opts.MaxInFlight >= 0 && n > int64(h.opts.MaxInFlight) {
		h.inFlight.Add(-1)
		return false
	}
	return true
}

// overloaded counts a refusal of the admission check and returns its 429.
func (h *Handler) overloaded() *apiError {
	h.m.refused.Add(1)
	return &apiError{status: http.StatusTooManyRequests, Type: "rate_limit_error", Code: "overloaded",
		Message: "the server is busy (every sequence and queue place is taken); retry shortly"}
}

// leaveBody is called by a refusal that does not read the request's
// body: the connection closes after the answer instead of the server
// reading (and waiting for) a body nobody needs.
func leaveBody(w http.ResponseWriter, r *http.Request) {
	if r.ContentLength != 0 {
		w.Header().Set("Connection", "close")
		// The server reads what is left of a body after the handler (to
		// reuse the connection); an expired deadline ends that at once.
		_ = http.NewResponseController(w).SetReadDeadline(time.Now())
	}
}

func tooLarge(limit int64) *apiError {
	return &apiError{status: http.StatusRequestEntityTooLarge, Type: "invalid_request_error", Code: "request_too_large",
		Message: fmt.Sprintf("the request body is larger than %d bytes", limit)}
}

// readBody reads the request body within MaxBodyBytes and the read
// deadline ServeHTTP set (BodyTimeout); a body cut off is counted by
// reason, and its connection is closed after the answer.
func (h *Handler) readBody(w http.ResponseWriter, r *http.Request) ([]byte, *apiError) {
	// Memory grows with what arrives, not with what the client declares.
	buf := bytes.NewBuffer(make([]byte, 0, min(max(r.ContentLength, 0)+1, 64<<10)))
	_, err := buf.ReadFrom(http.MaxBytesReader(w, r.Body, h.opts.MaxBodyBytes))
	if err == nil {
		if h.opts.BodyTimeout > 0 && r.ContentLength != 0 {
			// The deadline was for the body alone. (HTTP/1's server clears
			// it itself when it starts watching for the client's hang-up;
			// an HTTP/2 stream keeps it.)
			_ = http.NewResponseController(w).SetReadDeadline(time.Time{})
		}
		return buf.Bytes(), nil
	}
	// The deadline stays: the server does not wait for the rest.
	w.Header().Set("Connection", "close")
	var mbe *http.MaxBytesError
	switch {
	case errors.As(err, &mbe):
		h.m.bodyErrors.WithLabelValues(bodyTooLarge).Inc()
		return nil, tooLarge(mbe.Limit)
	case errors.Is(err, os.ErrDeadlineExceeded):
		h.m.bodyErrors.WithLabelValues(bodyTimeout).Inc()
		return nil, &apiError{status: http.StatusRequestTimeout, Type: "invalid_request_error", Code: "request_timeout",
			Message: fmt.Sprintf("the request body did not arrive within %v", h.opts.BodyTimeout)}
	}
	h.m.bodyErrors.WithLabelValues(bodyBroken).Inc()
	return nil, badRequest("", "reading the request body: %v", err)
}

// cheapChecksAndBody runs the checks that cost nothing before a request's
// body is read — draining, the declared size, the admission check — then
// reads the body within its deadline. On a refusal it has written the
// error and returns false.
func (h *Handler) cheapChecksAndBody(w http.ResponseWriter, r *http.Request) ([]byte, bool) {
	if h.draining.Load() {
		leaveBody(w, r)
		writeError(w, &apiError{status: 503, Type: "server_error", Code: "shutting_down", Message: "the server is shutting down; retry on another replica"})
		return nil, false
	}
	if r.ContentLength > h.opts.MaxBodyBytes {
		h.m.bodyErrors.WithLabelValues(bodyTooLarge).Inc()
		leaveBody(w, r)
		writeError(w, tooLarge(h.opts.MaxBodyBytes))
		return nil, false
	}
	if h.full() {
		leaveBody(w, r)
		writeError(w, h.overloaded())
		return nil, false
	}
	data, aerr := h.readBody(w, r)
	if aerr != nil {
		writeError(w, aerr)
		return nil, false
	}
	return data, true
}

// streamSSE writes the answer as server-sent events.
func (h *Handler) streamSSE(w http.ResponseWriter, r *http.Request, id string, req *chatRequest, gen pipeline.GenerateOptions, st *pipeline.Stream,
	tok llama.GeneratedToken, err error, ok bool, next func() (llama.GeneratedToken, error, bool), start time.Time) {
	include := req.StreamOptions != nil && req.StreamOptions.IncludeUsage
	if ts := h.toolStreamer(gen); ts != nil {
		ts := &toolStream{s: ts}
		h.writeEvents(w, r, st, tok, err, ok, next, start, id, "chat.completion.chunk", include,
			map[string]any{"role": "assistant", "content": ""}, ts.choices)
		return
	}
	h.writeEvents(w, r, st, tok, err, ok, next, start, id, "chat.completion.chunk", include,
		map[string]any{"role": "assistant", "content": ""},
		func(text string, finish any) any {
			delta := map[string]any{"content": text}
			if finish != nil {
				delta = map[string]any{}
			}
			return []map[string]any{{"index": 0, "delta": delta, "finish_reason": finish, "logprobs": nil}}
		})
}

// writeEvents writes a stream as server-sent events of the given object
// type: first (if set) as the delta of an opening event, one event per
// token with text, then the last one with the finish reason, the usage
// when include is set, and [DONE]. choices builds an event's
// choices from a token's text (finish nil) or the finish reason. An error
// after the first token becomes an error event; a client that went away
// is marked so.
func (h *Handler) writeEvents(w http.ResponseWriter, r *http.Request, st *pipeline.Stream,
	tok llama.GeneratedToken, err error, ok bool, next func() (llama.GeneratedToken, error, bool), start time.Time,
	id, object string, include bool, first map[string]any, choices func(text string, finish any) any) {
	fl, _ := w.(http.Flusher)
	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("Cache-Control", "no-cache")
	w.Header().Set("X-Accel-Buffering", "no")
	w.WriteHeader(200)
	created := time.Now().Unix()
	event := func(choices any) map[string]any {
		return map[string]any{"id": id, "object": object, "created": created, "model": h.opts.ModelName, "choices": choices}
	}
	send := func(v any) bool {
		data, _ := json.Marshal(v)
		if _, err := fmt.Fprintf(w, "data: %s\n\n", data); err != nil {
			return false
		}
		if fl != nil {
			fl.Flush()
		}
		return true
	}
	// sendChoices sends a choices list as an event, a multiEvent as one
	// event per list, nothing for nil.
	sendChoices := func(c any) bool {
		switch c := c.(type) {
		case nil:
			return true
		case multiEvent:
			for _, x := range c {
				if !send(event(x)) {
					return false
				}
			}
			return true
		}
		return send(event(c))
	}
	if first != nil && !send(event([]map[string]any{{"index": 0, "delta": first, "finish_reason": nil, "logprobs": nil}})) {
		markGone(w)
		return
	}
	for ok {
		if err != nil {
			if r.Context().Err() != nil {
				markGone(w)
				return
			}
			send(map[string]any{"error": mapError(err)})
			return
		}
		if tok.Text != "" && !sendChoices(choices(tok.Text, nil)) {
			markGone(w)
			return
		}
		tok, err, ok = next()
	}
	resp := st.Response()
	h.observe(resp, start)
	sendChoices(choices("", finishReason(resp.StopReason)))
	if include {
		u := event([]any{})
		u["usage"] = usage(resp)
		send(u)
	}
	fmt.Fprint(w, "data: [DONE]\n\n")
	if fl != nil {
		fl.Flush()
	}
}

func (h *Handler) observe(resp *pipeline.Response, start time.Time) {
	h.m.promptTokens.Add(float64(resp.Stats.PromptTokens))
	h.m.completionTokens.Add(float64(resp.Stats.GeneratedTokens))
	if resp.Stats.TimeToFirstToken > 0 {
		h.m.ttft.Observe(resp.Stats.TimeToFirstToken.Seconds())
	}
	if n := resp.Stats.GeneratedTokens; n > 1 && resp.Stats.DecodeTime > 0 {
		h.m.tpot.Observe(resp.Stats.DecodeTime.Seconds() / float64(n-1))
	}
	h.opts.Logger.Debug("chat completion", "prompt_tokens", resp.Stats.PromptTokens, "completion_tokens", resp.Stats.GeneratedTokens,
		"stop", resp.StopReason, "elapsed", time.Since(start))
}

func finishReason(r llama.StopReason) string {
	switch r {
	case llama.StopMaxTokens, llama.StopCacheFull:
		return "length"
	}
	return "stop"
}

func usage(resp *pipeline.Response) map[string]int {
	return map[string]int{
		"prompt_tokens": resp.Stats.PromptTokens, "completion_tokens": resp.Stats.GeneratedTokens,
		"total_tokens": resp.Stats.PromptTokens + resp.Stats.GeneratedTokens,
	}
}

// statusWriter records the status for the metrics.
type statusWriter struct {
	http.ResponseWriter
	status     int
	clientGone bool
}

func (s *statusWriter) WriteHeader(code int) {
	if s.status == 0 {
		s.status = code
	}
	s.ResponseWriter.WriteHeader(code)
}

func (s *statusWriter) Write(b []byte) (int, error) {
	if s.status == 0 {
		s.status = 200
	}
	return s.ResponseWriter.Write(b)
}

// Flush passes flushes through (server-sent events need them).
func (s *statusWriter) Flush() {
	if f, ok := s.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

// Unwrap lets http.ResponseController reach the connection.
func (s *statusWriter) Unwrap() http.ResponseWriter { return s.ResponseWriter }

// markGone records that the client went away (status 499 in the metrics).
func markGone(w http.ResponseWriter) {
	if s, ok := w.(*statusWriter); ok {
		s.clientGone = true
	}
}
