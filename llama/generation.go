package llama

import (
	"strings"
	"time"
)

// Generation is the state of one generated sequence apart from the context:
// the tokens so far, the partial UTF-8 sequence and the possible start of a
// stop string held back, the counters and why it ended. Generate steps one;
// a batching engine steps one per sequence, feeding it the tokens it samples
// from a shared batch. A Generation is for one goroutine at a time.
//
// The protocol: while !Done(), check AtMax (then End(StopMaxTokens)), sample
// a token at position Pos, pass it to Add and deliver what Add returns; if
// Add did not end the generation, decode the token at Pos and call Decoded.
type Generation struct {
	opts  GenerateOptions
	vocab *Vocab
	dec   *Decoder
	stops *stopMatcher
	text  strings.Builder
	res   GenerateResult
	start time.Time
	pos   int32
	done  bool
}

// NewGeneration starts a generation with vocabulary v; opts.Pos is the
// position of the first token, opts.MaxTokens bounds the tokens (0: no
// bound), opts.Stop and opts.Special apply as in Generate. opts.Seq is not
// used.
func NewGeneration(v *Vocab, opts GenerateOptions) *Generation {
	return &Generation{
		opts: opts, vocab: v, dec: v.NewDecoder(opts.Special), stops: newStopMatcher(opts.Stop),
		res: GenerateResult{NextPos: opts.Pos, Reason: StopBreak}, start: time.Now(), pos: opts.Pos,
	}
}

// Pos is the position of the next token.
func (g *Generation) Pos() int32 { return g.pos }

// Done reports whether the generation has ended.
func (g *Generation) Done() bool { return g.done }

// AtMax reports whether MaxTokens tokens have been generated.
func (g *Generation) AtMax() bool {
	return g.opts.MaxTokens > 0 && len(g.res.Tokens) >= g.opts.MaxTokens
}

// Add takes the token sampled at Pos and returns what to deliver: the token
// with the text it completes, or, when tok is an end-of-generation token,
// the held-back text as a piece with ID -1 (empty Text: nothing to
// deliver). ended reports that the generation is over (an end of
// generation, or a stop string; Result says which): the token is then not
// to be decoded.
func (g *Generation) Add(tok Token) (out GeneratedToken, ended bool, err error) {
	if len(g.res.Tokens) == 0 {
		g.res.FirstTime = time.Since(g.start)
	}
	if g.vocab.IsEOG(tok) {
		out, _ = g.End(StopEOG)
		return out, true, nil
	}
	g.res.Tokens = append(g.res.Tokens, tok)
	piece, err := g.dec.Add(tok)
	if err != nil {
		g.Fail(StopError)
		return GeneratedToken{}, true, err
	}
	text, hit := g.stops.add(piece)
	g.text.WriteString(text)
	g.res.Text = g.text.String()
	out = GeneratedToken{ID: tok, Text: text, Pos: g.pos, Elapsed: time.Since(g.start)}
	if hit {
		g.res.Reason = StopString
		g.finished()
		return out, true, nil
	}
	return out, false, nil
}

// Decoded records that the token Add returned was decoded into the KV
// cache at Pos: the next token goes at Pos+1.
func (g *Generation) Decoded() {
	g.pos++
	g.res.NextPos = g.pos
	g.res.Decoded++
}

// End ends the generation for reason and returns the text held back (a
// partial UTF-8 sequence, a possible start of a stop string) as a last
// piece with ID -1; ok is false when there is none. Ending twice does
// nothing.
func (g *Generation) End(reason StopReason) (tail GeneratedToken, ok bool) {
	if g.done {
		return GeneratedToken{}, false
	}
	g.res.Reason = reason
	text, hit := g.stops.add(g.dec.Flush())
	if !hit {
		text += g.stops.flush()
	}
	g.finished()
	if text == "" {
		return GeneratedToken{}, false
	}
	g.text.WriteString(text)
	g.res.Text = g.text.String()
	return GeneratedToken{ID: -1, Text: text, Pos: g.pos, Elapsed: time.Since(g.start)}, true
}

// Fail ends the generation for reason without releasing held-back text
// (an error, a cancellation).
func (g *Generation) Fail(reason StopReason) {
	if g.done {
		return
	}
	g.res.Reason = reason
	g.finished()
}

func (g *Generation) finished() {
	g.done = true
	g.res.Elapsed = time.Since(g.start)
}

// Result is the summary so far (final once Done).
func (g *Generation) Result() GenerateResult {
	r := g.res
	if !g.done {
		r.Elapsed = time.Since(g.start)
	}
	r.Tokens = append([]Token(nil), r.Tokens...)
	return r
}
