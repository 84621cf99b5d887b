package pipeline

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/vlm-go/vlm/llama"
	"github.com/vlm-go/vlm/mtmd"
	"github.com/vlm-go/vlm/template"
)

// HistoryPolicy says what a session does when its history no longer fits.
type HistoryPolicy int

// History policies.
const (
	// KeepHistory keeps every turn; a turn whose prompt does not fit fails
	// with an error wrapping llama.ErrPromptTooLong (the session is left
	// as it was).
	KeepHistory HistoryPolicy = iota
	// DropOldestTurns drops the oldest turns (after the system message)
	// until the prompt fits.
	DropOldestTurns
)

// SessionOptions configure NewSession.
type SessionOptions struct {
	// System is a system message that starts the conversation; empty for none.
	System string
	// SequenceLength bounds this session's prompt and answer, in positions; 0
	// means the pipeline's SequenceLength, which it may not exceed.
	SequenceLength int
	// History says what happens when the conversation outgrows
	// SequenceLength: KeepHistory (the default) or DropOldestTurns.
	History HistoryPolicy
}

// Session is a conversation that keeps its history (system and assistant
// turns are kept as content parts, the form vision-language chat templates
// expect). A session is a record, not a context: each turn runs in one of
// the pipeline's sequences like any request, and starts from what the KV
// cache still holds of the conversation (usually all of it: the sequence
// of the last turn is reused first), so only the new tokens are evaluated;
// its images come from the pipeline's image cache. When the cache has
// moved on, the turn is rebuilt from the history.
//
// A turn that fails — the prompt too long, a bad image, a cancelled ctx —
// leaves the session as it was; a turn whose caller stopped reading is kept
// with the text so far. Turns are serialised: a turn started while another
// runs waits for it (or for its ctx). History, Reset and Close may be
// called at any time, also in the loop over a turn's stream: History
// returns the conversation before the running turn, and a turn during
// which the session was reset or closed is not recorded.
type Session struct {
	p    *Pipeline
	opts SessionOptions
	turn chan struct{} // holds a token while a turn runs

	mu      sync.Mutex // guards what follows; never held while the caller's loop runs
	history []template.Message
	images  []*mtmd.Image // the images of history's image parts, in order
	epoch   uint64        // counts Reset and Close calls: a turn records its answer only if unchanged
	closed  bool
}

// NewSession starts a conversation.
func (p *Pipeline) NewSession(opts SessionOptions) (*Session, error) {
	if p.isClosed() {
		return nil, ErrClosed
	}
	if opts.SequenceLength < 0 || opts.SequenceLength > p.opts.SequenceLength {
		return nil, fmt.Errorf("SessionOptions.SequenceLength %d: at most the pipeline's %d (Options.SequenceLength): %w",
			opts.SequenceLength, p.opts.SequenceLength, ErrInvalidOptions)
	}
	if opts.History != KeepHistory && opts.History != DropOldestTurns {
		return nil, fmt.Errorf("SessionOptions.History %d: %w", opts.History, ErrInvalidOptions)
	}
	s := &Session{p: p, opts: opts, turn: make(chan struct{}, 1)}
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

// Stream is Send token by token.
func (s *Session) Stream(ctx context.Context, in Input, opts GenerateOptions) *Stream {
	resp := &Response{}
	return &Stream{resp: resp, seq: func(yield func(llama.GeneratedToken, error) bool) {
		start := time.Now()
		select {
		case s.turn <- struct{}{}:
			defer func() { <-s.turn }()
		case <-ctx.Done():
			yield(llama.GeneratedToken{}, fmt.Errorf("waiting for the session's previous turn: %w (%w)", llama.ErrCancelled, context.Cause(ctx)))
			return
		}
		// The session's lock is held only to read and write its fields:
		// the caller's loop body (yield) may call History, Reset or Close.
		s.mu.Lock()
		closed, history, histImages, epoch := s.closed, s.history, s.images, s.epoch
		s.mu.Unlock()
		if closed || s.p.isClosed() {
			yield(llama.GeneratedToken{}, ErrClosed)
			return
		}
		msgs, err := in.messages()
		if err != nil {
			yield(llama.GeneratedToken{}, err)
			return
		}
		images, err := s.p.loadImages(ctx, in.Images)
		if err != nil {
			yield(llama.GeneratedToken{}, err)
			return
		}
		for {
			all := append(append([]template.Message(nil), history...), msgs...)
			allImages := append(append([]*mtmd.Image(nil), histImages...), images...)
			tooLong := false
			err := s.p.answer(ctx, all, allImages, opts, s.opts.SequenceLength, start, resp, func(tok llama.GeneratedToken, err error) bool {
				if err != nil && errors.Is(err, llama.ErrPromptTooLong) && resp.Prompt == "" && s.opts.History == DropOldestTurns {
					if h, hi, ok := dropOldestTurn(history, histImages); ok {
						history, histImages, tooLong = h, hi, true
						return false
					}
				}
				return yield(tok, err)
			})
			if tooLong {
				*resp = Response{}
				continue
			}
			if err != nil {
				return // the session stays as it was
			}
			s.mu.Lock()
			if s.epoch == epoch {
				s.history = append(all, template.Assistant(template.Text(s.p.neutralise(resp.answer))))
				s.images = allImages
			}
			s.mu.Unlock()
			return
		}
	}}
}

// dropOldestTurn removes the first turn after the system message: a user
// message and the messages up to the next user message, with their images.
func dropOldestTurn(h []template.Message, imgs []*mtmd.Image) ([]template.Message, []*mtmd.Image, bool) {
	first := 0
	if len(h) > 0 && h[0].Role == "system" {
		first = 1
	}
	if first >= len(h) {
		return h, imgs, false
	}
	end := first + 1
	for end < len(h) && h[end].Role != "user" {
		end++
	}
	k, n := template.CountImages(h[:first]), template.CountImages(h[first:end])
	out := append(append([]template.Message(nil), h[:first]...), h[end:]...)
	return out, append(append([]*mtmd.Image(nil), imgs[:k]...), imgs[k+n:]...), true
}

// History returns the conversation so far.
func (s *Session) History() []template.Message {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]template.Message(nil), s.history...)
}

// Reset forgets the conversation, keeping a system message.
func (s *Session) Reset() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return ErrClosed
	}
	if len(s.history) > 0 && s.history[0].Role == "system" {
		s.history = []template.Message{s.history[0]}
	} else {
		s.history = nil
	}
	s.images = nil
	s.epoch++
	return nil
}

// Close ends the session (idempotent); later calls return ErrClosed.
func (s *Session) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.closed = true
	s.history, s.images = nil, nil
	s.epoch++
	return nil
}
