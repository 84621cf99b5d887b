package llama

import (
	"context"
	"errors"
	"fmt"
	"iter"
	"strings"
	"sync/atomic"
	"time"
)

// TokenSampler picks the next token from output i of a context's last
// Decode; *sampler.Sampler implements it.
type TokenSampler interface {
	Sample(x *Context, i int) (Token, error)
}

// StopReason says why a generation ended.
type StopReason string

// Stop reasons.
const (
	StopEOG       StopReason = "eog"        // the model produced an end-of-generation token
	StopMaxTokens StopReason = "max_tokens" // the token limit was reached
	StopString    StopReason = "stop"       // a stop string appeared
	StopCancelled StopReason = "cancelled"  // the context.Context was cancelled
	StopError     StopReason = "error"      // decoding failed
	StopBreak     StopReason = "break"      // the caller stopped iterating
	StopCacheFull StopReason = "cache_full" // the sequence or the KV cache is full: an end, not an error
)

// GenerateOptions configure Generate.
type GenerateOptions struct {
	// Pos is the position of the first generated token: the number of
	// positions the prompt took. The prompt's last output must hold logits.
	Pos int32
	// Seq is the sequence to generate in.
	Seq int32
	// MaxTokens bounds the tokens generated; 0 means until the context is full.
	MaxTokens int
	// Stop ends generation when one of these strings appears in the output;
	// the stop string and what follows are not returned.
	Stop []string
	// Special renders special tokens in Token.Text.
	Special bool
}

// GenerateResult summarises a finished generation.
type GenerateResult struct {
	Tokens    []Token       // every generated token (not the EOG token)
	Text      string        // the text returned, stop string cut off
	Reason    StopReason    // why it ended
	NextPos   int32         // the position after the last token in the KV cache
	FirstTime time.Duration // from the call to the first token
	Elapsed   time.Duration // from the call to the end
	Decoded   int           // tokens decoded into the KV cache
}

// GeneratedToken is one token yielded by Generate.
type GeneratedToken struct {
	// ID is the token; -1 for a final piece of held-back text that
	// belongs to no new token.
	ID Token
	// Text is what this token completes: valid UTF-8, possibly empty while
	// bytes are held back (a partial UTF-8 sequence or a possible stop string).
	Text string
	// Pos is the position the token was sampled for.
	Pos int32
	// Elapsed is the time from the start of Generate to this token.
	Elapsed time.Duration
	// Logprobs are the token's log-probability and the most likely
	// alternatives, when the caller asked for them (engine.Request's
	// Logprobs); nil otherwise and for a piece with ID -1.
	Logprobs *Logprobs
}

// Generate samples tokens one at a time from x, starting from the logits of
// the last decoded output, and decodes each into the KV cache. It yields
// each token as soon as its text is complete UTF-8, and ends at an
// end-of-generation token, MaxTokens, a stop string, a full context
// (StopCacheFull, with no error), or when ctx is cancelled (within one decode
// step; the error wraps ErrCancelled). Text held back when it ends (a
// partial UTF-8 sequence, a possible start of a stop string) is yielded as a
// last piece with ID -1 and is part of GenerateResult.Text.
// Breaking out of the loop stops generation and frees everything it made.
// Iterate the returned Stream's Tokens, then read its Result.
func Generate(ctx context.Context, x *Context, s TokenSampler, opts GenerateOptions) *Stream {
	st := &Stream{res: GenerateResult{NextPos: opts.Pos, Reason: StopBreak}}
	st.seq = func(yield func(GeneratedToken, error) bool) {
		if x == nil || s == nil {
			st.res.Reason = StopError
			yield(GeneratedToken{}, fmt.Errorf("Generate needs a context and a sampler: %w", ErrInvalidArgument))
			return
		}
		g := NewGeneration(x.model.Vocab(), opts)
		defer func() { st.res = g.Result() }()
		fail := func(reason StopReason, err error) {
			g.Fail(reason)
			yield(GeneratedToken{}, err)
		}
		// end ends the generation for reason, releasing what is held back.
		end := func(reason StopReason) {
			if tail, ok := g.End(reason); ok {
				yield(tail, nil)
			}
		}
		b, err := x.NewBatch(1)
		if err != nil {
			fail(StopError, err)
			return
		}
		defer b.Close()
		nCtx := int32(x.opts.ContextSize)
		for {
			if err := ctx.Err(); err != nil {
				fail(StopCancelled, fmt.Errorf("%w (%w)", ErrCancelled, err))
				return
			}
			if g.AtMax() {
				end(StopMaxTokens)
				return
			}
			tok, err := s.Sample(x, -1)
			if err != nil {
				fail(StopError, err)
				return
			}
			out, ended, err := g.Add(tok)
			if err != nil {
				yield(GeneratedToken{}, err)
				return
			}
			if out.ID >= 0 || out.Text != "" {
				if !yield(out, nil) {
					return
				}
			}
			if ended {
				return
			}
			pos := g.Pos()
			if pos+1 >= nCtx {
				end(StopCacheFull)
				return
			}
			// Feed the token back.
			b.Clear()
			if err := b.Add(tok, pos, true, opts.Seq); err != nil {
				fail(StopError, err)
				return
			}
			if err := x.Decode(ctx, b); err != nil {
				if errors.Is(err, ErrContextFull) && ctx.Err() == nil {
					// No KV cell is left (other sequences hold them): the
					// end of the room, not a failure.
					end(StopCacheFull)
					return
				}
				if ctx.Err() != nil {
					fail(StopCancelled, err)
				} else {
					fail(StopError, err)
				}
				return
			}
			g.Decoded()
		}
	}
	return st
}

// Stream is a generation: iterate Tokens once, then read Result (the
// pattern of pipeline.Stream and engine.Stream).
type Stream struct {
	seq     iter.Seq2[GeneratedToken, error]
	res     GenerateResult
	started atomic.Bool
}

// Tokens yields the tokens as Generate describes. A Stream generates once:
// iterating Tokens again yields only an error (ErrInvalidArgument).
func (s *Stream) Tokens() iter.Seq2[GeneratedToken, error] {
	return func(yield func(GeneratedToken, error) bool) {
		if s.started.Swap(true) {
			yield(GeneratedToken{}, fmt.Errorf("llama: Stream.Tokens iterated twice (a Stream generates once): %w", ErrInvalidArgument))
			return
		}
		s.seq(yield)
	}
}

// Result summarises the generation; final once Tokens has ended (also
// after a break).
func (s *Stream) Result() GenerateResult { return s.res }

// stopMatcher holds back text that could be the start of a stop string.
type stopMatcher struct {
	stops   []string
	pending string
}

func newStopMatcher(stops []string) *stopMatcher {
	var s []string
	for _, x := range stops {
		if x != "" {
			s = append(s, x)
		}
	}
	return &stopMatcher{stops: s}
}

// add appends text and returns what can be released, and whether a stop
// string was found (then nothing after it is released).
func (m *stopMatcher) add(text string) (string, bool) {
	if len(m.stops) == 0 {
		return text, false
	}
	m.pending += text
	cut := -1
	for _, s := range m.stops {
		if i := strings.Index(m.pending, s); i >= 0 && (cut < 0 || i < cut) {
			cut = i
		}
	}
	if cut >= 0 {
		out := m.pending[:cut]
		m.pending = ""
		return out, true
	}
	// Keep the longest suffix that is a prefix of a stop string.
	keep := 0
	for _, s := range m.stops {
		for k := min(len(s)-1, len(m.pending)); k > keep; k-- {
			if strings.HasSuffix(m.pending, s[:k]) {
				keep = k
				break
			}
		}
	}
	out := m.pending[:len(m.pending)-keep]
	m.pending = m.pending[len(m.pending)-keep:]
	return out, false
}

func (m *stopMatcher) flush() string {
	out := m.pending
	m.pending = ""
	return out
}
