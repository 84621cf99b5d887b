package pipeline

import (
	"context"
	"errors"
	"fmt"
	"iter"
	"strings"
	"time"

	"github.com/vlm-go/vlm/llama"
	"github.com/vlm-go/vlm/mtmd"
	"github.com/vlm-go/vlm/sampler"
	"github.com/vlm-go/vlm/template"
)

// GenerateOptions configure one answer. The zero value gives up to 256
// greedy tokens.
type GenerateOptions struct {
	// MaxNewTokens bounds the answer; 0 means DefaultMaxNewTokens, -1 until
	// the model stops or the context is full.
	MaxNewTokens int
	// Sampler chooses tokens; the zero value is greedy.
	Sampler sampler.Config
	// Seed, if non-zero, overrides Sampler.Seed.
	Seed uint32
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
}

// DefaultMaxNewTokens is the answer length when MaxNewTokens is 0.
const DefaultMaxNewTokens = 256

func (o GenerateOptions) maxTokens() (int, error) {
	switch {
	case o.MaxNewTokens == 0:
		return DefaultMaxNewTokens, nil
	case o.MaxNewTokens == -1:
		return 0, nil
	case o.MaxNewTokens < -1:
		return 0, fmt.Errorf("MaxNewTokens %d: %w", o.MaxNewTokens, ErrInvalidOptions)
	}
	return o.MaxNewTokens, nil
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
	PrefillTime      time.Duration // time evaluating the prompt (images decoded included)
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
	// Stats are counts and timings.
	Stats Stats

	answer string // the generated text alone
}

// seqState is what a sequence of a context holds: the prompt entries (text
// tokens and image chunks) and generated tokens, in order.
type seqState struct {
	units []unit
	pos   int32 // next position
}

// unit is one entry in a sequence: a text token, or a whole image chunk.
type unit struct {
	tok   llama.Token
	image string // image ID/tile for image chunks
	n     int    // entries (1 for a token, NTokens for an image chunk)
	npos  int32  // positions taken
}

func (u unit) equal(v unit) bool { return u.tok == v.tok && u.image == v.image && u.n == v.n }

// unitsOf lists the entries of tokenized chunks.
func unitsOf(chunks *mtmd.Chunks) []unit {
	var out []unit
	for _, ch := range chunks.All() {
		if ch.Type == mtmd.ChunkText {
			for _, t := range ch.Tokens {
				out = append(out, unit{tok: t, n: 1, npos: 1})
			}
			continue
		}
		out = append(out, unit{tok: -1, image: fmt.Sprintf("%s/%d", ch.ImageID, ch.Tile), n: ch.NTokens, npos: int32(ch.NPos)})
	}
	return out
}

// turn is one answer in a context's sequence.
type turn struct {
	p      *Pipeline
	x      *llama.Context
	seq    int32
	state  *seqState
	cache  *mtmd.ImageCache
	msgs   []template.Message
	images []*mtmd.Image
	opts   GenerateOptions
	start  time.Time // when the call began (images are decoded after it)
}

// run evaluates the prompt (reusing the common prefix of what the sequence
// holds) and yields the answer's tokens; resp is filled in as it goes.
func (t *turn) run(ctx context.Context, resp *Response, yield func(llama.GeneratedToken, error) bool) {
	start := t.start
	fail := func(err error) {
		resp.StopReason = llama.StopError
		if errors.Is(err, llama.ErrCancelled) {
			resp.StopReason = llama.StopCancelled
		}
		yield(llama.GeneratedToken{}, err)
	}
	maxTokens, err := t.opts.maxTokens()
	if err != nil {
		fail(err)
		return
	}
	full, prompt, err := t.p.render(t.msgs)
	if err != nil {
		fail(err)
		return
	}
	resp.Prompt = full
	addSpecial := t.p.addBOS && (t.p.bos == "" || !strings.HasPrefix(prompt, t.p.bos))
	chunks, err := t.p.proj.Tokenize(prompt, t.images, mtmd.TokenizeOptions{AddSpecial: addSpecial, ParseSpecial: true, Cache: t.cache})
	if err != nil {
		fail(err)
		return
	}
	defer chunks.Close()
	units := unitsOf(chunks)

	// Reuse the longest common prefix; at least one entry is evaluated so
	// that the last one yields logits.
	k := 0
	for k < len(units) && k < len(t.state.units) && units[k].equal(t.state.units[k]) {
		k++
	}
	if k == len(units) && k > 0 {
		k--
	}
	skip, pos := 0, int32(0)
	for _, u := range units[:k] {
		skip += u.n
		pos += u.npos
	}
	if err := t.x.RemoveTokens(t.seq, pos, -1); err != nil {
		// A partial removal can fail (recurrent models): start over.
		if err := t.x.RemoveTokens(t.seq, -1, -1); err != nil {
			fail(err)
			return
		}
		k, skip, pos = 0, 0, 0
	}
	t.state.units, t.state.pos = t.state.units[:k], pos

	resp.Stats.PromptTokens = chunks.NTokens()
	resp.Stats.ImageTokens = chunks.ImageTokens()
	resp.Stats.CachedTokens = skip
	resp.Stats.ImageCacheHits, resp.Stats.ImageCacheMisses = chunks.CacheStats()
	prefillStart := time.Now()
	next, es, err := t.p.proj.Eval(ctx, t.x, chunks, mtmd.EvalOptions{
		Pos: pos, Seq: t.seq, Logits: true, SkipTokens: skip, ImageProgress: t.opts.ImageProgress,
	})
	resp.Stats.PrefillTime = time.Since(prefillStart)
	resp.Stats.EvaluatedTokens = es.TextTokens + es.ImageTokens
	resp.Stats.ImagesEncoded, resp.Stats.ImagesCached = es.ImagesEncoded, es.ImagesCached
	resp.Stats.ImageEncodeTime = time.Duration(es.EncodeNanos)
	if err != nil {
		// What the sequence holds is no longer known: drop it.
		_ = t.x.RemoveTokens(t.seq, -1, -1)
		t.state.units, t.state.pos = nil, 0
		fail(err)
		return
	}
	t.state.units, t.state.pos = units, next

	cfg := t.opts.Sampler
	if t.opts.Seed != 0 {
		cfg.Seed = t.opts.Seed
	}
	smp, err := sampler.New(t.p.model, cfg)
	if err != nil {
		fail(err)
		return
	}
	defer smp.Close()
	var gr llama.GenerateResult
	var text strings.Builder
	decodeStart := time.Now()
	stopped := false
	for tok, err := range llama.Generate(ctx, t.x, smp, llama.GenerateOptions{
		Pos: next, Seq: t.seq, MaxTokens: maxTokens, Stop: t.opts.Stop, Result: &gr,
	}) {
		if err != nil {
			fail(err)
			stopped = true
			break
		}
		if resp.Stats.TimeToFirstToken == 0 && tok.ID >= 0 {
			resp.Stats.TimeToFirstToken = time.Since(start)
		}
		text.WriteString(tok.Text)
		if !yield(tok, nil) {
			stopped = true
			break
		}
	}
	// Generate fills gr when its loop ends, also on break.
	resp.Stats.DecodeTime = time.Since(decodeStart)
	resp.Stats.GeneratedTokens = len(gr.Tokens)
	resp.Stats.Total = time.Since(start)
	resp.Tokens = gr.Tokens
	if !stopped || resp.StopReason == "" {
		resp.StopReason = gr.Reason
	}
	resp.Text = text.String()
	resp.answer = resp.Text
	if t.opts.ReturnFullText {
		resp.Text = full + resp.Text
	}
	for _, tok := range gr.Tokens[:gr.Decoded] {
		t.state.units = append(t.state.units, unit{tok: tok, n: 1, npos: 1})
	}
	t.state.pos = gr.NextPos
}

// loadImages decodes the input's images.
func (p *Pipeline) loadImages(imgs []Image) ([]*mtmd.Image, error) {
	out := make([]*mtmd.Image, len(imgs))
	for i, im := range imgs {
		d, err := im.load(p.opts.ImageLimits, p.decoded)
		if err != nil {
			return nil, fmt.Errorf("pipeline: image %d of %d: %w", i+1, len(imgs), err)
		}
		out[i] = d
	}
	return out, nil
}

// Stream is an answer being generated; iterate Tokens once, then read
// Response.
type Stream struct {
	seq  iter.Seq2[llama.GeneratedToken, error]
	resp *Response
}

// Tokens yields the answer's tokens as they are generated; an error ends
// it. Breaking out of the loop stops generation.
func (s *Stream) Tokens() iter.Seq2[llama.GeneratedToken, error] { return s.seq }

// Response returns the answer so far; complete once Tokens has ended.
func (s *Stream) Response() *Response { return s.resp }

// Stream answers one input token by token, on a free context.
func (p *Pipeline) Stream(ctx context.Context, in Input, opts GenerateOptions) *Stream {
	resp := &Response{}
	return &Stream{resp: resp, seq: func(yield func(llama.GeneratedToken, error) bool) {
		start := time.Now()
		msgs, err := in.messages()
		if err != nil {
			yield(llama.GeneratedToken{}, err)
			return
		}
		images, err := p.loadImages(in.Images)
		if err != nil {
			yield(llama.GeneratedToken{}, err)
			return
		}
		s, err := p.acquire(ctx)
		if err != nil {
			yield(llama.GeneratedToken{}, err)
			return
		}
		defer p.release(s)
		t := &turn{p: p, x: s.x, seq: 0, state: &s.state, cache: p.cache, msgs: msgs, images: images, opts: opts, start: start}
		t.run(ctx, resp, yield)
	}}
}

// Run answers one input.
func (p *Pipeline) Run(ctx context.Context, in Input, opts GenerateOptions) (*Response, error) {
	return p.Stream(ctx, in, opts).wait()
}

// wait runs the stream to its end and returns the response and the first error.
func (s *Stream) wait() (*Response, error) {
	for _, err := range s.seq {
		if err != nil {
			return s.resp, err
		}
	}
	return s.resp, nil
}

// RunBatch answers several inputs, Options.Parallel at a time, and returns
// the responses in input order. The first error is returned with the
// responses so far (nil for inputs that failed or did not run).
func (p *Pipeline) RunBatch(ctx context.Context, inputs []Input, opts GenerateOptions) ([]*Response, error) {
	out := make([]*Response, len(inputs))
	errs := make([]error, len(inputs))
	sem := make(chan struct{}, p.opts.Parallel)
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
