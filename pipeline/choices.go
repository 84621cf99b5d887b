package pipeline

import (
	"context"
	"fmt"
	"iter"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/vlm-go/vlm/engine"
	"github.com/vlm-go/vlm/llama"
	"github.com/vlm-go/vlm/mtmd"
	"github.com/vlm-go/vlm/template"
)

// MaxChoices bounds the choices of one StreamChoices or RunChoices call;
// Options.Sequences bounds them too (the choices run at once, one sequence
// each).
const MaxChoices = engine.MaxChoices

// ChoiceToken is a token of one of several choices.
type ChoiceToken struct {
	// Choice is the index of the choice the token belongs to.
	Choice int
	llama.GeneratedToken
}

// ChoiceStream is several answers to one input being generated; iterate
// Tokens once, then read Responses.
type ChoiceStream struct {
	seq     iter.Seq2[ChoiceToken, error]
	resps   []*Response
	started atomic.Bool
}

// Tokens yields the choices' tokens as they are generated, interleaved,
// each with its choice's index; an error (any choice's) ends it. Breaking
// out of the loop stops every choice. Like Stream, it is one request.
func (s *ChoiceStream) Tokens() iter.Seq2[ChoiceToken, error] {
	return func(yield func(ChoiceToken, error) bool) {
		if s.started.Swap(true) {
			yield(ChoiceToken{}, fmt.Errorf("pipeline: ChoiceStream.Tokens iterated twice (a ChoiceStream is one request; make another): %w", ErrInvalidInput))
			return
		}
		s.seq(yield)
	}
}

// Responses returns the choices' answers, in order; complete once Tokens
// has ended. Every response's Stats count the prompt (PromptTokens) once
// for all: only the first one evaluated it (EvaluatedTokens, images
// encoded); the others started from a copy of its KV cache
// (CachedTokens).
func (s *ChoiceStream) Responses() []*Response { return s.resps }

// StreamChoices answers one input n times (OpenAI's n), token by token:
// the prompt and its images are evaluated once, then each choice samples
// its own answer with its own sampler; choice i's Sampler.Seed is
// opts.Sampler.Seed + i (a random seed each when it is 0; Response.Seed
// tells). n is at most MaxChoices and Options.Sequences (else
// ErrInvalidOptions). Decoded together, the choices' logits can differ
// in their last bits from a request's alone, so a sampled choice is
// reproduced by the same call, not always by Run with its seed.
func (p *Pipeline) StreamChoices(ctx context.Context, in Input, opts GenerateOptions, n int) *ChoiceStream {
	resps := make([]*Response, max(n, 1))
	for i := range resps {
		resps[i] = &Response{}
	}
	s := &ChoiceStream{resps: resps}
	s.seq = func(yield func(ChoiceToken, error) bool) {
		start := time.Now()
		fail := func(err error) {
			for _, r := range resps {
				r.StopReason = llama.StopError
			}
			yield(ChoiceToken{}, err)
		}
		if p.isClosed() {
			fail(ErrClosed)
			return
		}
		if p.sup != nil {
			fail(ErrNotInChildProcess)
			return
		}
		if n < 1 || n > MaxChoices || n > p.opts.Sequences {
			fail(fmt.Errorf("pipeline: %d choices: between 1 and %d (Options.Sequences, at most %d): %w", n, min(p.opts.Sequences, MaxChoices), MaxChoices, ErrInvalidOptions))
			return
		}
		msgs, err := in.messages()
		if err != nil {
			fail(err)
			return
		}
		images, err := p.loadImages(ctx, in.Images)
		if err != nil {
			fail(err)
			return
		}
		p.answerChoices(ctx, msgs, images, opts, n, start, resps, yield)
	}
	return s
}

// RunChoices answers one input n times from one prefill (StreamChoices)
// and returns the responses in order.
func (p *Pipeline) RunChoices(ctx context.Context, in Input, opts GenerateOptions, n int) ([]*Response, error) {
	s := p.StreamChoices(ctx, in, opts, n)
	for _, err := range s.Tokens() {
		if err != nil {
			return s.resps, err
		}
	}
	return s.resps, nil
}

// answerChoices submits the prompt for len(resps) choices and yields
// their tokens as they come.
func (p *Pipeline) answerChoices(ctx context.Context, msgs []template.Message, images []*mtmd.Image, opts GenerateOptions, n int,
	start time.Time, resps []*Response, yield func(ChoiceToken, error) bool) {
	streams, err := p.submit(ctx, msgs, images, opts, 0, n, resps[0])
	if err != nil {
		for _, r := range resps {
			r.StopReason = llama.StopError
		}
		yield(ChoiceToken{}, err)
		return
	}
	for _, r := range resps[1:] {
		r.Prompt, r.tools = resps[0].Prompt, resps[0].tools
		r.Stats.ImageCacheHits, r.Stats.ImageCacheMisses = resps[0].Stats.ImageCacheHits, resps[0].Stats.ImageCacheMisses
	}
	// One goroutine per choice reads its engine stream into items; the
	// caller's loop takes them. quit tells the readers to stop (they break
	// out of their streams, which cancels them).
	type item struct {
		tok ChoiceToken
		err error
	}
	items := make(chan item)
	quit := make(chan struct{})
	texts := make([]strings.Builder, n)
	var wg sync.WaitGroup
	for i, st := range streams {
		wg.Go(func() {
			for tok, err := range st.Tokens() {
				select {
				case items <- item{ChoiceToken{Choice: i, GeneratedToken: tok}, err}:
				case <-quit:
					return
				}
			}
		})
	}
	go func() { wg.Wait(); close(items) }()
	stopAll := func(cancel bool) {
		close(quit)
		if cancel {
			for _, st := range streams {
				st.Cancel()
			}
		}
		for range items { // until every reader has ended
		}
	}
	var failed error
	for it := range items {
		if it.err != nil {
			failed = it.err
			stopAll(true)
			break
		}
		i := it.tok.Choice
		r := resps[i]
		if r.Stats.TimeToFirstToken == 0 && it.tok.ID >= 0 {
			r.Stats.TimeToFirstToken = time.Since(start)
		}
		texts[i].WriteString(it.tok.Text)
		r.addLogprobs(it.tok.GeneratedToken)
		if !yield(it.tok, nil) {
			stopAll(false) // each reader breaks out: StopBreak
			break
		}
	}
	for i, st := range streams {
		<-st.Done()
		resps[i].finish(st.Result(), texts[i].String(), opts, start)
	}
	if failed != nil {
		yield(ChoiceToken{}, failed)
	}
}

// ChoicesLimit is the most choices StreamChoices and RunChoices take on
// this pipeline: Options.Sequences, at most MaxChoices.
func (p *Pipeline) ChoicesLimit() int { return min(p.opts.Sequences, MaxChoices) }
