package openai

import (
	"context"
	"encoding/json"
	"fmt"
	"iter"
	"math"
	"net/http"
	"strconv"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/vlm-go/vlm/llama"
	"github.com/vlm-go/vlm/pipeline"
	"github.com/vlm-go/vlm/toolcall"
)

// Choices, log-probabilities and logit bias: what a request asks beyond
// one plain answer.
//
//   - n (chat and completions): 1 to the pipeline's ChoicesLimit
//     (pipeline.Options.Sequences, at most 16): the choices run at once, one
//     sequence each, from ONE prefill of the prompt (and its images); usage
//     counts the prompt once. Choice i samples with seed+i (any seed when
//     the request has none); decoded together, the choices' logits can
//     differ in their last bits from a request's alone, so the same
//     request reproduces its choices, n = 1 with seed+i need not. Above
//     the limit: 400.
//   - logprobs / top_logprobs (chat: a bool and 0–20; completions: an int
//     0–20, the legacy shape): the log-softmax of the model's raw logits,
//     before temperature, penalties, logit bias and grammars — vLLM's
//     default. Streams carry each chunk's tokens' log-probabilities.
//   - logit_bias: token ids (JSON object keys) to values from −100 to 100,
//     added to the logits before sampling (−100 bans a token in practice).

// choiceOptions are a request's n, logprobs and logit bias, checked.
type choiceOptions struct {
	n        int
	logprobs bool
	top      int
	bias     map[llama.Token]float32
}

// special reports whether the request needs the choices path (several
// choices or log-probabilities).
func (c choiceOptions) special() bool { return c.n > 1 || c.logprobs }

// apply puts the options into the pipeline's options.
func (c choiceOptions) apply(gen *pipeline.GenerateOptions) {
	gen.Logprobs, gen.TopLogprobs = c.logprobs, c.top
	if len(c.bias) > 0 {
		gen.Sampler.LogitBias = c.bias
	}
}

// parseChoices checks n, the log-probability fields and logit_bias.
// logprobs and top come from the chat fields (logprobs, top_logprobs) or
// the completions one (logprobs: an int), with topParam naming it.
func (h *Handler) parseChoices(n *int, logprobs bool, top *int, topParam string, bias json.RawMessage) (choiceOptions, *apiError) {
	c := choiceOptions{n: 1, logprobs: logprobs}
	if n != nil {
		limit := h.p.ChoicesLimit()
		if *n < 1 || *n > limit {
			return c, badRequest("n", "n = %d: between 1 and %d on this server (its parallel sequences, at most %d: the choices run at once from one prefill)",
				*n, limit, pipeline.MaxChoices)
		}
		c.n = *n
	}
	if top != nil {
		if *top < 0 || *top > llama.MaxTopLogprobs {
			return c, badRequest(topParam, "%s = %d: must be between 0 and %d", topParam, *top, llama.MaxTopLogprobs)
		}
		if !logprobs && topParam == "top_logprobs" && *top > 0 {
			return c, badRequest(topParam, "top_logprobs needs logprobs: true")
		}
		c.top = *top
	}
	if !isNull(bias) {
		var m map[string]float64
		if err := json.Unmarshal(bias, &m); err != nil {
			return c, badRequest("logit_bias", "logit_bias must be an object of token ids (as strings) to numbers between -100 and 100: %v", err)
		}
		nVocab := h.p.Model().Vocab().Size()
		for k, v := range m {
			id, err := strconv.Atoi(k)
			if err != nil || id < 0 || id >= nVocab {
				return c, badRequest("logit_bias", "logit_bias key %q: a token id between 0 and %d", k, nVocab-1)
			}
			if v < -100 || v > 100 || math.IsNaN(v) {
				return c, badRequest("logit_bias", "logit_bias[%q] = %v: must be between -100 and 100", k, v)
			}
			if c.bias == nil {
				c.bias = map[llama.Token]float32{}
			}
			c.bias[llama.Token(id)] = float32(v)
		}
	}
	return c, nil
}

// piece is token t as the client sees it in log-probabilities: its bytes
// (special tokens rendered) and those as a string.
func (h *Handler) piece(t llama.Token) (string, []int) {
	b, _ := h.p.Model().Vocab().Piece(t, true)
	ints := make([]int, len(b))
	for i, c := range b {
		ints[i] = int(c)
	}
	return string(b), ints
}

// finiteLogprob keeps JSON encodable: an impossible token is -9999, as
// OpenAI reports it.
func finiteLogprob(v float32) float32 {
	if math.IsInf(float64(v), 0) || math.IsNaN(float64(v)) || v < -9999 {
		return -9999
	}
	return v
}

// chatLogprob is one entry of a chat choice's logprobs.content.
type chatLogprob struct {
	Token       string        `json:"token"`
	Logprob     float32       `json:"logprob"`
	Bytes       []int         `json:"bytes"`
	TopLogprobs []chatLogprob `json:"top_logprobs"`
}

// chatLogprobOf is the entry for a token with its log-probabilities.
func (h *Handler) chatLogprobOf(id llama.Token, lp llama.Logprobs) chatLogprob {
	tok, b := h.piece(id)
	e := chatLogprob{Token: tok, Logprob: finiteLogprob(lp.Logprob), Bytes: b, TopLogprobs: []chatLogprob{}}
	for _, c := range lp.Top {
		t, cb := h.piece(c.ID)
		e.TopLogprobs = append(e.TopLogprobs, chatLogprob{Token: t, Logprob: finiteLogprob(c.Logprob), Bytes: cb})
	}
	return e
}

// legacyLogprobs is a completions choice's logprobs (OpenAI's legacy shape).
type legacyLogprobs struct {
	Tokens        []string             `json:"tokens"`
	TokenLogprobs []float32            `json:"token_logprobs"`
	TopLogprobs   []map[string]float32 `json:"top_logprobs"`
	TextOffset    []int                `json:"text_offset"`
}

// add appends a token; offset is the character offset of the token in
// the choice's text, which add advances.
func (l *legacyLogprobs) add(h *Handler, id llama.Token, lp llama.Logprobs, top int, offset *int) {
	tok, _ := h.piece(id)
	l.Tokens = append(l.Tokens, tok)
	l.TokenLogprobs = append(l.TokenLogprobs, finiteLogprob(lp.Logprob))
	m := map[string]float32{}
	for _, c := range lp.Top[:min(top, len(lp.Top))] {
		t, _ := h.piece(c.ID)
		m[t] = finiteLogprob(c.Logprob)
	}
	// The sampled token is always listed (up to logprobs+1 entries).
	if _, ok := m[tok]; !ok {
		m[tok] = finiteLogprob(lp.Logprob)
	}
	l.TopLogprobs = append(l.TopLogprobs, m)
	l.TextOffset = append(l.TextOffset, *offset)
	*offset += utf8.RuneCountInString(tok)
}

// choicesUsage counts the prompt once and every choice's tokens.
func choicesUsage(resps []*pipeline.Response) map[string]int {
	u := map[string]int{"prompt_tokens": resps[0].Stats.PromptTokens, "completion_tokens": 0}
	for _, r := range resps {
		u["completion_tokens"] += r.Stats.GeneratedTokens
	}
	u["total_tokens"] = u["prompt_tokens"] + u["completion_tokens"]
	return u
}

// observeChoices records the choices in the metrics: the prompt once.
func (h *Handler) observeChoices(resps []*pipeline.Response, start time.Time) {
	h.observe(resps[0], start)
	for _, r := range resps[1:] {
		h.m.completionTokens.Add(float64(r.Stats.GeneratedTokens))
	}
}

// sse writes server-sent events.
type sse struct {
	w  http.ResponseWriter
	fl http.Flusher
}

func newSSE(w http.ResponseWriter) *sse {
	fl, _ := w.(http.Flusher)
	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("Cache-Control", "no-cache")
	w.Header().Set("X-Accel-Buffering", "no")
	w.WriteHeader(200)
	return &sse{w: w, fl: fl}
}

func (s *sse) send(v any) bool {
	data, err := json.Marshal(v)
	if err != nil {
		data, _ = json.Marshal(map[string]any{"error": mapError(err)})
	}
	if _, err := fmt.Fprintf(s.w, "data: %s\n\n", data); err != nil {
		return false
	}
	if s.fl != nil {
		s.fl.Flush()
	}
	return true
}

func (s *sse) done() {
	fmt.Fprint(s.w, "data: [DONE]\n\n")
	if s.fl != nil {
		s.fl.Flush()
	}
}

// choiceTokens starts the choices and takes their first item: an error
// there is the response's status (written here; ok false).
func (h *Handler) choiceTokens(w http.ResponseWriter, r *http.Request, ctx context.Context, in pipeline.Input, gen pipeline.GenerateOptions, n int) (
	st *pipeline.ChoiceStream, first pipeline.ChoiceToken, more bool, next func() (pipeline.ChoiceToken, error, bool), stop func(), ok bool) {
	st = h.p.StreamChoices(ctx, in, gen, n)
	next, stop = iter.Pull2(st.Tokens())
	tok, err, more := next()
	if more && err != nil {
		stop()
		if r.Context().Err() != nil {
			markGone(w)
		} else {
			writeError(w, mapError(err))
		}
		return nil, tok, false, nil, nil, false
	}
	return st, tok, more, next, stop, true
}

// chatChoices answers a chat request with several choices or
// log-probabilities.
func (h *Handler) chatChoices(w http.ResponseWriter, r *http.Request, ctx context.Context, id string, req *chatRequest,
	in pipeline.Input, gen pipeline.GenerateOptions, start time.Time) {
	co := req.choices
	co.apply(&gen)
	st, tok, more, next, stop, ok := h.choiceTokens(w, r, ctx, in, gen, co.n)
	if !ok {
		return
	}
	defer stop()
	var err error
	entries := make([][]chatLogprob, co.n) // per choice: not yet sent (streams) or all (else)
	take := func(tok pipeline.ChoiceToken) {
		if co.logprobs && tok.ID >= 0 && tok.Logprobs != nil {
			entries[tok.Choice] = append(entries[tok.Choice], h.chatLogprobOf(tok.ID, *tok.Logprobs))
		}
	}
	logprobsOf := func(i int) any {
		if !co.logprobs {
			return nil
		}
		c := entries[i]
		if c == nil {
			c = []chatLogprob{}
		}
		entries[i] = nil
		return map[string]any{"content": c, "refusal": nil}
	}
	if !req.Stream {
		for ; more; tok, err, more = next() {
			if err != nil {
				if r.Context().Err() != nil {
					markGone(w)
					return
				}
				writeError(w, mapError(err))
				return
			}
			take(tok)
		}
		resps := st.Responses()
		h.observeChoices(resps, start)
		choices := make([]map[string]any, co.n)
		for i, resp := range resps {
			message, finish := answerMessage(resp, gen, resp.Text)
			choices[i] = map[string]any{
				"index": i, "message": message,
				"finish_reason": finish, "logprobs": logprobsOf(i),
			}
		}
		writeJSON(w, 200, map[string]any{
			"id": id, "object": "chat.completion", "created": time.Now().Unix(), "model": h.opts.ModelName,
			"choices": choices, "usage": choicesUsage(resps),
		})
		return
	}
	s := newSSE(w)
	created := time.Now().Unix()
	event := func(choices any) map[string]any {
		return map[string]any{"id": id, "object": "chat.completion.chunk", "created": created, "model": h.opts.ModelName, "choices": choices}
	}
	tools := make([]*toolcall.Streamer, co.n) // per choice, when the request offers tools
	for i := range tools {
		tools[i] = h.toolStreamer(gen)
	}
	for i := range co.n {
		if !s.send(event([]map[string]any{{"index": i, "delta": map[string]any{"role": "assistant", "content": ""}, "finish_reason": nil, "logprobs": nil}})) {
			markGone(w)
			return
		}
	}
	for ; more; tok, err, more = next() {
		if err != nil {
			if r.Context().Err() != nil {
				markGone(w)
				return
			}
			s.send(map[string]any{"error": mapError(err)})
			return
		}
		take(tok)
		if tok.Text == "" {
			continue // its log-probabilities go with the next text
		}
		i := tok.Choice
		text := tok.Text
		if tools[i] != nil {
			if text = tools[i].Write(text); text == "" {
				continue // held back: maybe a call; its log-probabilities go with the next text
			}
		}
		if !s.send(event([]map[string]any{{"index": i, "delta": map[string]any{"content": text}, "finish_reason": nil, "logprobs": logprobsOf(i)}})) {
			markGone(w)
			return
		}
	}
	resps := st.Responses()
	h.observeChoices(resps, start)
	for i, resp := range resps {
		if len(entries[i]) > 0 {
			s.send(event([]map[string]any{{"index": i, "delta": map[string]any{"content": ""}, "finish_reason": nil, "logprobs": logprobsOf(i)}}))
		}
		finish := finishReason(resp.StopReason)
		if tools[i] != nil {
			var deltas []map[string]any
			deltas, finish = toolCallDeltas(tools[i], finish)
			for _, d := range deltas {
				s.send(event([]map[string]any{{"index": i, "delta": d, "finish_reason": nil, "logprobs": nil}}))
			}
		}
		s.send(event([]map[string]any{{"index": i, "delta": map[string]any{}, "finish_reason": finish, "logprobs": nil}}))
	}
	if req.StreamOptions != nil && req.StreamOptions.IncludeUsage {
		u := event([]any{})
		u["usage"] = choicesUsage(resps)
		s.send(u)
	}
	s.done()
}

// completionChoices answers a completions request with several choices or
// log-probabilities: choice prompt×n + i is prompt's choice i.
func (h *Handler) completionChoices(w http.ResponseWriter, r *http.Request, ctx context.Context, id string, req *completionRequest,
	prompts []string, gen pipeline.GenerateOptions, co choiceOptions, start time.Time) {
	co.apply(&gen)
	if req.Stream {
		h.streamCompletionChoices(w, r, ctx, id, req, prompts[0], gen, co, start)
		return
	}
	type result struct {
		resps []*pipeline.Response
		err   error
	}
	results := make([]result, len(prompts))
	var wg sync.WaitGroup
	for i, p := range prompts {
		wg.Go(func() {
			resps, err := h.p.RunChoices(ctx, pipeline.Input{Prompt: p}, gen, co.n)
			results[i] = result{resps, err}
		})
	}
	wg.Wait()
	var choices []map[string]any
	total := map[string]int{"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0}
	for pi, res := range results {
		if res.err != nil {
			if r.Context().Err() != nil {
				markGone(w)
				return
			}
			writeError(w, mapError(res.err))
			return
		}
		h.observeChoices(res.resps, start)
		for k, v := range choicesUsage(res.resps) {
			total[k] += v
		}
		for i, resp := range res.resps {
			c := map[string]any{"index": pi*co.n + i, "text": resp.Text, "logprobs": nil, "finish_reason": finishReason(resp.StopReason)}
			if co.logprobs {
				l := &legacyLogprobs{Tokens: []string{}, TokenLogprobs: []float32{}, TopLogprobs: []map[string]float32{}, TextOffset: []int{}}
				offset := 0
				for _, lp := range resp.Logprobs {
					l.add(h, lp.ID, lp.Logprobs, co.top, &offset)
				}
				c["logprobs"] = l
			}
			choices = append(choices, c)
		}
	}
	writeJSON(w, 200, map[string]any{
		"id": id, "object": "text_completion", "created": time.Now().Unix(), "model": h.opts.ModelName,
		"choices": choices, "usage": total,
	})
}

// streamCompletionChoices streams one prompt's choices; each event
// carries one choice's text and its tokens' log-probabilities.
func (h *Handler) streamCompletionChoices(w http.ResponseWriter, r *http.Request, ctx context.Context, id string, req *completionRequest,
	prompt string, gen pipeline.GenerateOptions, co choiceOptions, start time.Time) {
	st, tok, more, next, stop, ok := h.choiceTokens(w, r, ctx, pipeline.Input{Prompt: prompt}, gen, co.n)
	if !ok {
		return
	}
	defer stop()
	var err error
	pending := make([]*legacyLogprobs, co.n)
	offsets := make([]int, co.n)
	take := func(tok pipeline.ChoiceToken) {
		if !co.logprobs || tok.ID < 0 || tok.Logprobs == nil {
			return
		}
		i := tok.Choice
		if pending[i] == nil {
			pending[i] = &legacyLogprobs{}
		}
		pending[i].add(h, tok.ID, *tok.Logprobs, co.top, &offsets[i])
	}
	logprobsOf := func(i int) any {
		if !co.logprobs {
			return nil
		}
		l := pending[i]
		pending[i] = nil
		if l == nil {
			l = &legacyLogprobs{Tokens: []string{}, TokenLogprobs: []float32{}, TopLogprobs: []map[string]float32{}, TextOffset: []int{}}
		}
		return l
	}
	s := newSSE(w)
	created := time.Now().Unix()
	event := func(choices any) map[string]any {
		return map[string]any{"id": id, "object": "text_completion", "created": created, "model": h.opts.ModelName, "choices": choices}
	}
	for ; more; tok, err, more = next() {
		if err != nil {
			if r.Context().Err() != nil {
				markGone(w)
				return
			}
			s.send(map[string]any{"error": mapError(err)})
			return
		}
		take(tok)
		if tok.Text == "" {
			continue
		}
		i := tok.Choice
		if !s.send(event([]map[string]any{{"index": i, "text": tok.Text, "logprobs": logprobsOf(i), "finish_reason": nil}})) {
			markGone(w)
			return
		}
	}
	resps := st.Responses()
	h.observeChoices(resps, start)
	for i, resp := range resps {
		var lp any
		if pending[i] != nil {
			lp = logprobsOf(i)
		}
		s.send(event([]map[string]any{{"index": i, "text": "", "logprobs": lp, "finish_reason": finishReason(resp.StopReason)}}))
	}
	if req.StreamOptions != nil && req.StreamOptions.IncludeUsage {
		u := event([]any{})
		u["usage"] = choicesUsage(resps)
		s.send(u)
	}
	s.done()
}
