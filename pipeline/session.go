package pipeline

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/vlm-go/vlm/llama"
	"github.com/vlm-go/vlm/mtmd"
	"github.com/vlm-go/vlm/template"
)

// SessionOptions configure NewSession.
type SessionOptions struct {
	// System is a system message that starts the conversation; empty for none.
	System string
	// ContextSize overrides the pipeline's context length for this session.
	ContextSize int
}

// Session is a conversation (system and assistant turns are kept as
// content parts, the form vision-language chat templates expect) that keeps its history and KV cache: each turn
// evaluates only the tokens that differ from what the cache holds (prefix
// reuse), and its images come from the pipeline's image cache: a history
// image is neither preprocessed nor encoded again.
// A Session is for one goroutine at a time (calls are serialised).
//
// A session's state is one sequence of a context, so that several sessions
// can later share one context.
type Session struct {
	p       *Pipeline
	mu      sync.Mutex
	x       *llama.Context
	seq     int32
	state   seqState
	history []template.Message
	images  []*mtmd.Image // the images of history's image parts, in order
	closed  bool
}

// NewSession starts a conversation with its own context.
func (p *Pipeline) NewSession(opts SessionOptions) (*Session, error) {
	p.mu.Lock()
	closed := p.closed
	p.mu.Unlock()
	if closed {
		return nil, ErrClosed
	}
	if opts.ContextSize < 0 {
		return nil, fmt.Errorf("ContextSize %d: %w", opts.ContextSize, ErrInvalidOptions)
	}
	n := opts.ContextSize
	if n == 0 {
		n = p.opts.ContextSize
	}
	x, err := p.newContext(n)
	if err != nil {
		return nil, err
	}
	s := &Session{p: p, x: x}
	if opts.System != "" {
		s.history = append(s.history, template.System(template.Text(opts.System)))
	}
	return s, nil
}

// Send adds the input as the next user turn (Input.Text and Images; or
// Input.Messages, appended as given) and returns the answer, which joins
// the history as an assistant turn.
func (s *Session) Send(ctx context.Context, in Input, opts GenerateOptions) (*Response, error) {
	return s.Stream(ctx, in, opts).wait()
}

// Stream is Send token by token. If the answer ends in an error or the
// caller stops early, the turn is still added with the text so far.
func (s *Session) Stream(ctx context.Context, in Input, opts GenerateOptions) *Stream {
	resp := &Response{}
	return &Stream{resp: resp, seq: func(yield func(llama.GeneratedToken, error) bool) {
		start := time.Now()
		s.mu.Lock()
		defer s.mu.Unlock()
		if s.closed {
			yield(llama.GeneratedToken{}, ErrClosed)
			return
		}
		msgs, err := in.messages()
		if err != nil {
			yield(llama.GeneratedToken{}, err)
			return
		}
		images, err := s.p.loadImages(in.Images)
		if err != nil {
			yield(llama.GeneratedToken{}, err)
			return
		}
		all := append(append([]template.Message(nil), s.history...), msgs...)
		allImages := append(append([]*mtmd.Image(nil), s.images...), images...)
		t := &turn{p: s.p, x: s.x, seq: s.seq, state: &s.state, cache: s.p.cache, msgs: all, images: allImages, opts: opts, start: start}
		t.run(ctx, resp, yield)
		if resp.Prompt == "" { // nothing was evaluated: the turn did not happen
			return
		}
		s.history = append(all, template.Assistant(template.Text(resp.answer)))
		s.images = allImages
	}}
}

// History returns the conversation so far.
func (s *Session) History() []template.Message {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]template.Message(nil), s.history...)
}

// Reset forgets the conversation (keeping a system message) and clears the
// KV cache.
func (s *Session) Reset() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return ErrClosed
	}
	if len(s.history) > 0 && s.history[0].Role == "system" {
		s.history = s.history[:1]
	} else {
		s.history = nil
	}
	s.images = nil
	s.state = seqState{}
	return s.x.ClearMemory()
}

// Close frees the session's context (idempotent).
func (s *Session) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil
	}
	s.closed = true
	return s.x.Close()
}
