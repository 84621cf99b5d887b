package pipeline

import (
	"context"
	"errors"
	"fmt"
	"iter"
	"strings"
	"sync/atomic"
	"time"

	"github.com/vlm-go/vlm/engine"
	"github.com/vlm-go/vlm/llama"
	"github.com/vlm-go/vlm/mtmd"
	"github.com/vlm-go/vlm/sampler"
	"github.com/vlm-go/vlm/template"
	"github.com/vlm-go/vlm/toolcall"
)

// GenerateOptions configure one answer. The zero value is greedy, until
// the model stops or the context is full.
type GenerateOptions struct {
	// MaxTokens bounds the answer; 0 means no bound (until the model
	// stops or the context is full), as in llama.GenerateOptions and
	// engine.Request.
	MaxTokens int
	// Sampler chooses tokens; the zero value is greedy.
	Sampler sampler.Config
	// Stop ends the answer at any of these strings (not included).
	Stop []string
	// ImageProgress, if set, is called as the prompt's images are evaluated:
	// after each image chunk (an image, or a tile of one), with the chunks
	// done and the total to evaluate (images already in the KV cache are
	// not counted). A terminal program can draw a progress bar with it.
	ImageProgress func(done, total int)
	// ReturnFullText returns the rendered prompt followed by the answer, as
	// transformers' return_full_text=True; off by default.
	ReturnFullText bool
	// Logprobs asks for each answer token's log-probability, and
	// TopLogprobs (0 to llama.MaxTopLogprobs) for the most likely tokens
	// at each position: on the stream's tokens (llama.GeneratedToken's
	// Logprobs) and in Response.Logprobs. They are the model's own
	// distribution (the log-softmax of the raw logits, before temperature,
	// penalties, logit bias or a grammar change it), as vLLM returns by
	// default.
	Logprobs    bool
	TopLogprobs int
	// Tools offer the model functions to call; nil offers none. The calls
	// it makes are in Response.ToolCalls.
	Tools *ToolOptions
}

func (o GenerateOptions) maxTokens() (int, error) {
	if o.MaxTokens < 0 {
		return 0, fmt.Errorf("MaxTokens %d (0 means no bound): %w", o.MaxTokens, ErrInvalidOptions)
	}
	return o.MaxTokens, nil
}

// Stats describe one answer.
type Stats struct {
	PromptTokens     int           // entries of the whole prompt: text tokens plus image embeddings
	ImageTokens      int           // image embeddings in the prompt
	CachedTokens     int           // prompt entries reused from the KV cache
	EvaluatedTokens  int           // prompt entries evaluated for this answer
	ImagesEncoded    int           // image chunks run through the vision encoder
	ImagesCached     int           // image chunks whose embeddings came from a cache
	ImageCacheHits   int           // distinct images of the prompt found in the image cache (not preprocessed)
	ImageCacheMisses int           // distinct images preprocessed for this answer
	GeneratedTokens  int           // tokens of the answer
	TimeToFirstToken time.Duration // from the start of the call (images decoded included) to the first answer token
	ImageEncodeTime  time.Duration // time in the vision encoder
	QueueTime        time.Duration // waiting for a free sequence (Options.Sequences)
	PrefillTime      time.Duration // from a sequence to the prompt evaluated (shared with the other sequences' steps)
	DecodeTime       time.Duration // time generating
	Total            time.Duration
}

// PrefillTokensPerSecond is the prompt evaluation speed.
func (s Stats) PrefillTokensPerSecond() float64 {
	return perSecond(s.EvaluatedTokens, s.PrefillTime)
}

// DecodeTokensPerSecond is the generation speed.
func (s Stats) DecodeTokensPerSecond() float64 { return perSecond(s.GeneratedTokens, s.DecodeTime) }

func perSecond(n int, d time.Duration) float64 {
	if d <= 0 {
		return 0
	}
	return float64(n) / d.Seconds()
}

// String is a one-line summary, e.g. "prompt 58 tokens (20 image, 0 from
// the KV cache, 58 evaluated), image chunks 5 encoded 0 cached, 8 generated,
// ttft 546ms, encode 20ms, prefill 106.5 tok/s, decode 3458.3 tok/s". An
// image chunk is an image or, for projectors that tile images, one tile.
func (s Stats) String() string {
	return fmt.Sprintf("prompt %d tokens (%d image, %d from the KV cache, %d evaluated), image chunks %d encoded %d cached, %d generated, ttft %v, encode %v, prefill %.1f tok/s, decode %.1f tok/s",
		s.PromptTokens, s.ImageTokens, s.CachedTokens, s.EvaluatedTokens, s.ImagesEncoded, s.ImagesCached, s.GeneratedTokens,
		s.TimeToFirstToken.Round(time.Microsecond), s.ImageEncodeTime.Round(time.Microsecond),
		s.PrefillTokensPerSecond(), s.DecodeTokensPerSecond())
}

// Response is one answer.
type Response struct {
	// Text is the answer (with ReturnFullText, the rendered prompt first).
	Text string
	// Prompt is the chat rendered by the model's template, exactly as
	// transformers renders it.
	Prompt string
	// Tokens are the answer's tokens.
	Tokens []llama.Token
	// StopReason says why the answer ended.
	StopReason llama.StopReason
	// Seed is the seed the answer was sampled with (a random one when
	// Sampler.Seed was 0; StreamChoices' choice i: Seed+i).
	Seed uint32
	// Logprobs has one entry per token of the answer, in order, when
	// GenerateOptions.Logprobs asked for them (nil otherwise).
	Logprobs []TokenLogprobs
	// Stats are counts and timings.
	Stats Stats
	// ToolCalls are the calls the answer makes (GenerateOptions.Tools);
	// Text is then the answer's text outside them.
	ToolCalls []toolcall.Call
	// ToolParseError says why an answer that started a call could not be
	// parsed into calls (Text then holds the whole answer); nil otherwise.
	ToolParseError error

	answer string     // the generated text alone
	tools  *toolSetup // the tools offered, when GenerateOptions.Tools is set
}

// TokenLogprobs are an answer token's log-probabilities.
type TokenLogprobs struct {
	ID llama.Token
	llama.Logprobs
}

// answer renders msgs, tokenizes them with images, runs the prompt through
// the engine (maxPos bounds prompt and answer; 0: the pipeline's context
// size) and yields the answer's tokens; resp is filled in as it goes. It
// returns the error the answer ended with: nil for an answer, also when
// the caller stopped reading (a session keeps the turn only then).
func (p *Pipeline) answer(ctx context.Context, msgs []template.Message, images []*mtmd.Image, opts GenerateOptions, maxPos int,
	start time.Time, resp *Response, yield func(llama.GeneratedToken, error) bool) error {
	if p.sup != nil {
		return p.remoteAnswer(ctx, msgs, images, opts, maxPos, start, resp, yield)
	}
	fail := func(err error) error {
		resp.StopReason = llama.StopError
		if errors.Is(err, llama.ErrCancelled) {
			resp.StopReason = llama.StopCancelled
		}
		yield(llama.GeneratedToken{}, err)
		return err
	}
	streams, err := p.submit(ctx, msgs, images, opts, maxPos, 1, resp)
	if err != nil {
		return fail(err)
	}
	stream := streams[0]
	var text strings.Builder
	var failed error
	for tok, err := range stream.Tokens() {
		if err != nil {
			failed = err
			break
		}
		if resp.Stats.TimeToFirstToken == 0 && tok.ID >= 0 {
			resp.Stats.TimeToFirstToken = time.Since(start)
		}
		text.WriteString(tok.Text)
		resp.addLogprobs(tok)
		if !yield(tok, nil) {
			break
		}
	}
	resp.finish(stream.Result(), text.String(), opts, start)
	if failed != nil {
		yield(llama.GeneratedToken{}, failed)
	}
	return failed
}

// submit renders msgs, tokenizes them with images and submits the prompt
// to the engine for n choices; resp (the first choice's) gets the
// rendered prompt and the image cache's counts.
func (p *Pipeline) submit(ctx context.Context, msgs []template.Message, images []*mtmd.Image, opts GenerateOptions, maxPos, n int,
	resp *Response) ([]*engine.Stream, error) {
	maxTokens, err := opts.maxTokens()
	if err != nil {
		return nil, err
	}
	if opts.TopLogprobs < 0 || opts.TopLogprobs > llama.MaxTopLogprobs || (opts.TopLogprobs > 0 && !opts.Logprobs) {
		return nil, fmt.Errorf("TopLogprobs %d: 0 to %d, with Logprobs: %w", opts.TopLogprobs, llama.MaxTopLogprobs, ErrInvalidOptions)
	}
	if err := p.checkText(msgs); err != nil {
		return nil, err
	}
	var vars map[string]any
	if opts.Tools != nil {
		if msgs, resp.tools, err = p.prepareTools(msgs, &opts); err != nil {
			return nil, err
		}
		vars = resp.tools.vars
	}
	full, prompt, err := p.render(ctx, msgs, vars)
	if err != nil {
		if cerr := ctx.Err(); cerr != nil {
			err = fmt.Errorf("%w (%w)", llama.ErrCancelled, cerr)
		}
		return nil, err
	}
	addSpecial := p.addBOS && (p.bos == "" || !strings.HasPrefix(prompt, p.bos))
	chunks, err := p.proj.Tokenize(ctx, prompt, images, mtmd.TokenizeOptions{AddSpecial: addSpecial, ParseSpecial: true, Cache: p.cache})
	if err != nil {
		return nil, err
	}
	resp.Stats.ImageCacheHits, resp.Stats.ImageCacheMisses = chunks.CacheStats()
	streams, err := p.eng.SubmitN(ctx, engine.Request{
		Chunks: chunks, Sampler: opts.Sampler, MaxTokens: maxTokens, Stop: opts.Stop, SequenceLength: maxPos, ImageProgress: opts.ImageProgress,
		Logprobs: opts.Logprobs, TopLogprobs: opts.TopLogprobs,
		Special: opts.Tools != nil, // call markers are often special tokens
	}, n)
	if err != nil {
		if errors.Is(err, llama.ErrPromptTooLong) {
			err = fmt.Errorf("pipeline: %w", err)
		} else if errors.Is(err, engine.ErrInvalidRequest) && n > 1 {
			err = fmt.Errorf("pipeline: %w (%w)", err, ErrInvalidOptions)
		}
		return nil, err
	}
	resp.Prompt = full
	return streams, nil
}

// addLogprobs records tok's log-probabilities, if it has them.
func (resp *Response) addLogprobs(tok llama.GeneratedToken) {
	if tok.Logprobs != nil && tok.ID >= 0 {
		resp.Logprobs = append(resp.Logprobs, TokenLogprobs{ID: tok.ID, Logprobs: *tok.Logprobs})
	}
}

// finish fills resp in from the engine's result and the text delivered.
func (resp *Response) finish(res engine.Result, text string, opts GenerateOptions, start time.Time) {
	st := &resp.Stats
	st.PromptTokens, st.ImageTokens, st.CachedTokens, st.EvaluatedTokens = res.PromptTokens, res.ImageTokens, res.CachedTokens, res.EvaluatedTokens
	st.ImagesEncoded, st.ImagesCached, st.ImageEncodeTime = res.ImagesEncoded, res.ImagesCached, res.EncodeTime
	st.QueueTime, st.PrefillTime, st.DecodeTime = res.QueueTime, res.PrefillTime, res.DecodeTime
	st.GeneratedTokens = len(res.Tokens)
	st.Total = time.Since(start)
	resp.Tokens = res.Tokens
	resp.StopReason = res.Reason
	resp.Seed = res.Seed
	resp.Text = text
	resp.answer = resp.Text
	if t := resp.tools; t != nil && len(t.tools) > 0 {
		resp.Text, resp.ToolCalls, resp.ToolParseError = t.format.Parse(resp.Text, t.tools)
	}
	if opts.ReturnFullText {
		resp.Text = resp.Prompt + resp.Text
	}
}

// checkText refuses text that the projector would read as an image
// marker: the prompt would silently hold another image than the caller's.
func (p *Pipeline) checkText(msgs []template.Message) error {
	markers := []string{p.marker, legacyMarker}
	for i, m := range msgs {
		texts := []string{m.Text}
		for _, part := range m.Content {
			if part.Type == template.TypeText {
				texts = append(texts, part.Text)
			}
		}
		for _, t := range texts {
			for _, mk := range markers {
				if strings.Contains(t, mk) {
					return fmt.Errorf("pipeline: message %d (%s) contains %q, which the projector reads as an image; pass pictures as images (Input.Images, template.Image parts): %w",
						i+1, m.Role, mk, ErrInvalidInput)
				}
			}
		}
	}
	return nil
}

// legacyMarker is the other text mtmd reads as an image marker.
const legacyMarker = "<__image__>"

// neutralise breaks image markers in generated text, so that an answer
// kept in a session's history cannot turn into an image marker in the
// next prompt (a zero-width space after the first byte).
func (p *Pipeline) neutralise(s string) string {
	for _, mk := range []string{p.marker, legacyMarker} {
		if mk != "" && strings.Contains(s, mk) {
			s = strings.ReplaceAll(s, mk, mk[:1]+"\u200b"+mk[1:])
		}
	}
	return s
}

// Stream is an answer being generated; iterate Tokens once, then read
// Response.
type Stream struct {
	seq     iter.Seq2[llama.GeneratedToken, error]
	resp    *Response
	started atomic.Bool
}

// Tokens yields the answer's tokens as they are generated; an error ends
// it. Breaking out of the loop stops generation. A Stream is one request:
// iterating Tokens a second time yields only an error (ErrInvalidInput)
// and does not run the request again.
func (s *Stream) Tokens() iter.Seq2[llama.GeneratedToken, error] {
	return func(yield func(llama.GeneratedToken, error) bool) {
		if s.started.Swap(true) {
			yield(llama.GeneratedToken{}, fmt.Errorf("pipeline: Stream.Tokens iterated twice (a Stream is one request; make another): %w", ErrInvalidInput))
			return
		}
		s.seq(yield)
	}
}

// Response returns the answer so far; complete once Tokens has ended.
func (s *Stream) Response() *Response { return s.resp }

// Stream answers one input token by token. Breaking out of the loop stops
// the answer.
func (p *Pipeline) Stream(ctx context.Context, in Input, opts GenerateOptions) *Stream {
	resp := &Response{}
	return &Stream{resp: resp, seq: func(yield func(llama.GeneratedToken, error) bool) {
		start := time.Now()
		if p.isClosed() {
			yield(llama.GeneratedToken{}, ErrClosed)
			return
		}
		msgs, err := in.messages()
		if err != nil {
			yield(llama.GeneratedToken{}, err)
			return
		}
		images, err := p.loadImages(ctx, in.Images)
		if err != nil {
			yield(llama.GeneratedToken{}, err)
			return
		}
		p.answer(ctx, msgs, images, opts, 0, start, resp, yield)
	}}
}

// Run answers one input.
func (p *Pipeline) Run(ctx context.Context, in Input, opts GenerateOptions) (*Response, error) {
	return p.Stream(ctx, in, opts).wait()
}

// wait runs the stream to its end and returns the response and the first error.
func (s *Stream) wait() (*Response, error) {
	for _, err := range s.Tokens() {
		if err != nil {
			return s.resp, err
		}
	}
	return s.resp, nil
}

// RunBatch answers several inputs, batched Options.Sequences at a time, and
// returns the responses in input order. The errors are returned joined,
// with the responses (nil for inputs that failed).
func (p *Pipeline) RunBatch(ctx context.Context, inputs []Input, opts GenerateOptions) ([]*Response, error) {
	out := make([]*Response, len(inputs))
	errs := make([]error, len(inputs))
	sem := make(chan struct{}, 2*p.opts.Sequences) // enough to keep every sequence busy
	done := make(chan struct{})
	for i, in := range inputs {
		sem <- struct{}{}
		go func() {
			defer func() { <-sem; done <- struct{}{} }()
			r, err := p.Run(ctx, in, opts)
			if err == nil {
				out[i] = r
			}
			errs[i] = err
		}()
	}
	for range inputs {
		<-done
	}
	return out, errors.Join(errs...)
}
