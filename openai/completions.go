package openai

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"iter"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/vlm-go/vlm/pipeline"
)

// completionRequest is the body of POST /v1/completions (OpenAI's legacy
// text completions, which the Gateway API Inference Extension requires of
// a model server). The prompt is raw text: no chat template is applied.
type completionRequest struct {
	Model  string          `json:"model"`
	Prompt json.RawMessage `json:"prompt"`
	sampling

	// Choices, log-probabilities (the legacy int), logit bias (choices.go).
	N         *int            `json:"n"`
	Logprobs  *int            `json:"logprobs"`
	LogitBias json.RawMessage `json:"logit_bias"`
	choices   choiceOptions   // the three above, checked

	// Refused when they ask for what is not implemented.
	BestOf *int    `json:"best_of"`
	Echo   *bool   `json:"echo"`
	Suffix *string `json:"suffix"`
}

const (
	// defaultCompletionTokens is OpenAI's max_tokens default for completions.
	defaultCompletionTokens = 16
	// maxCompletionPrompts bounds the prompts of one completions request
	// (each is a choice, answered concurrently).
	maxCompletionPrompts = 16
)

// parseCompletion reads and checks a completions body; prompts holds one
// prompt per choice.
func (h *Handler) parseCompletion(data []byte) (*completionRequest, []string, *apiError) {
	var req completionRequest
	d := json.NewDecoder(bytes.NewReader(data))
	if err := d.Decode(&req); err != nil {
		var te *json.UnmarshalTypeError
		if errors.As(err, &te) {
			return nil, nil, badRequest(te.Field, "%s must be a JSON %s, not %s", te.Field, te.Type, te.Value)
		}
		return nil, nil, badRequest("", "the body is not valid JSON: %v", err)
	}
	if d.More() {
		return nil, nil, badRequest("", "the body holds more than one JSON value")
	}
	co, aerr := h.parseChoices(req.N, req.Logprobs != nil, req.Logprobs, "logprobs", req.LogitBias)
	if aerr != nil {
		return nil, nil, aerr
	}
	req.choices = co
	switch {
	case req.BestOf != nil && *req.BestOf != 1:
		return nil, nil, badRequest("best_of", "best_of = %d: not supported", *req.BestOf)
	case req.Echo != nil && *req.Echo:
		return nil, nil, badRequest("echo", "echo is not supported")
	case req.Suffix != nil && *req.Suffix != "":
		return nil, nil, badRequest("suffix", "suffix (insertion) is not supported")
	}
	if isNull(req.Prompt) {
		return nil, nil, badRequest("prompt", "prompt is required")
	}
	var one string
	var many []string
	if err := json.Unmarshal(req.Prompt, &one); err == nil {
		many = []string{one}
	} else if err := json.Unmarshal(req.Prompt, &many); err != nil {
		return nil, nil, badRequest("prompt", "prompt must be a string or an array of strings (token ids are not supported)")
	}
	if len(many) == 0 {
		return nil, nil, badRequest("prompt", "prompt is an empty array")
	}
	if len(many) > maxCompletionPrompts {
		return nil, nil, badRequest("prompt", "at most %d prompts per request, got %d", maxCompletionPrompts, len(many))
	}
	for i, p := range many {
		if p == "" {
			return nil, nil, badRequest("prompt", "prompt %d is empty", i)
		}
	}
	if req.Stream && len(many) > 1 {
		return nil, nil, badRequest("prompt", "a streamed completion takes one prompt, got %d", len(many))
	}
	return &req, many, nil
}

// completions serves POST /v1/completions.
func (h *Handler) completions(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	data, ok := h.cheapChecksAndBody(w, r)
	if !ok {
		return
	}
	req, prompts, aerr := h.parseCompletion(data)
	if aerr != nil {
		writeError(w, aerr)
		return
	}
	if !h.admit() {
		writeError(w, h.overloaded())
		return
	}
	defer h.inFlight.Add(-1)
	// The sampling fields mean what they mean for chat: one parser.
	chat := &chatRequest{Model: req.Model, Messages: []chatMessage{{Role: "user", Content: json.RawMessage(`"x"`)}}, sampling: req.sampling}
	if chat.MaxTokens == nil {
		n := min(defaultCompletionTokens, h.opts.MaxTokens)
		chat.MaxTokens = &n
	}
	ctx, cancel := context.WithTimeout(r.Context(), h.opts.RequestTimeout)
	defer cancel()
	_, gen, aerr := h.prepare(ctx, chat)
	if aerr != nil {
		writeError(w, aerr)
		return
	}
	id := "cmpl-" + strings.TrimPrefix(newID(), "chatcmpl-")
	if req.choices.special() {
		h.completionChoices(w, r, ctx, id, req, prompts, gen, req.choices, start)
		return
	}
	req.choices.apply(&gen) // logit_bias
	if req.Stream {
		h.streamCompletion(w, r, ctx, id, req, prompts[0], gen, start)
		return
	}
	type result struct {
		resp *pipeline.Response
		err  error
	}
	results := make([]result, len(prompts))
	var wg sync.WaitGroup
	for i, p := range prompts {
		wg.Go(func() {
			resp, err := h.p.Run(ctx, pipeline.Input{Prompt: p}, gen)
			results[i] = result{resp, err}
		})
	}
	wg.Wait()
	choices := make([]map[string]any, len(prompts))
	total := map[string]int{"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0}
	for i, res := range results {
		if res.err != nil {
			if r.Context().Err() != nil {
				markGone(w)
				return
			}
			writeError(w, mapError(res.err))
			return
		}
		h.observe(res.resp, start)
		choices[i] = map[string]any{"index": i, "text": res.resp.Text, "logprobs": nil, "finish_reason": finishReason(res.resp.StopReason)}
		for k, v := range usage(res.resp) {
			total[k] += v
		}
	}
	writeJSON(w, 200, map[string]any{
		"id": id, "object": "text_completion", "created": time.Now().Unix(), "model": h.opts.ModelName,
		"choices": choices, "usage": total,
	})
}

// streamCompletion writes one prompt's completion as server-sent events.
func (h *Handler) streamCompletion(w http.ResponseWriter, r *http.Request, ctx context.Context, id string, req *completionRequest,
	prompt string, gen pipeline.GenerateOptions, start time.Time) {
	st := h.p.Stream(ctx, pipeline.Input{Prompt: prompt}, gen)
	next, stop := iter.Pull2(st.Tokens())
	defer stop()
	tok, err, ok := next()
	if ok && err != nil {
		if r.Context().Err() != nil {
			markGone(w)
			return
		}
		writeError(w, mapError(err))
		return
	}
	include := req.StreamOptions != nil && req.StreamOptions.IncludeUsage
	h.writeEvents(w, r, st, tok, err, ok, next, start, id, "text_completion", include, nil,
		func(text string, finish any) any {
			return []map[string]any{{"index": 0, "text": text, "logprobs": nil, "finish_reason": finish}}
		})
}
