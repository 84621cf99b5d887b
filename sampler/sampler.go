// Package sampler turns a plain Go Config into a llama.cpp sampler chain
// that picks the next token from a context's logits.
//
// The zero Config is greedy decoding (always the most likely token), which
// is deterministic. Set Temperature > 0 for sampling; Seed makes sampling
// reproducible.
package sampler

import (
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"github.com/vlm-go/vlm/internal/errkind"
	"runtime"
	"sync"

	"github.com/vlm-go/vlm"
	"github.com/vlm-go/vlm/internal/llamaaccess"
	"github.com/vlm-go/vlm/llama"
)

// ErrInvalidConfig: a Config field is out of range or the grammar does not parse.
var ErrInvalidConfig = errkind.New("sampler: invalid config", vlm.ErrInvalidArgument)

// ErrClosed: the sampler was closed.
var ErrClosed = vlm.ErrClosed

// Config describes how the next token is chosen. Zero fields are off.
type Config struct {
	// Temperature divides the logits; 0 means greedy (arg-max).
	Temperature float32
	// TopK keeps the K most likely tokens; 0 is off.
	TopK int
	// TopP keeps the fewest tokens whose probabilities sum to P; 0 or 1 is off.
	TopP float32
	// MinP keeps tokens at least MinP times as likely as the best; 0 is off.
	MinP float32
	// TypicalP is locally typical sampling with mass P; 0 or 1 is off.
	TypicalP float32
	// RepeatLastN is how many recent tokens the penalties look at; 0 means
	// 64 when a penalty is set, -1 the whole context (a window of the
	// model's training context length, as llama.cpp's DRY sampler reads -1).
	RepeatLastN int
	// RepeatPenalty divides the logits of recent tokens; 0 or 1 is off.
	RepeatPenalty float32
	// FrequencyPenalty is subtracted once per occurrence of a recent token.
	FrequencyPenalty float32
	// PresencePenalty is subtracted once from every recent token.
	PresencePenalty float32
	// Seed seeds sampling; 0 picks a random seed. Unused when greedy.
	Seed uint32
	// LogitBias is added to the logits of the given tokens (use a large
	// negative value to ban a token).
	LogitBias map[llama.Token]float32
	// Grammar is a GBNF grammar the output must follow; empty is off.
	Grammar string
	// GrammarRoot is the grammar's start rule; empty means "root".
	GrammarRoot string
	// GrammarTriggers make the grammar lazy: it constrains nothing until
	// the output so far matches one of these regular expressions
	// (ECMAScript syntax, matched against the whole output), and from then
	// on applies from the match's first capture group (or the whole
	// match), as llama.cpp's lazy grammars do. Used for tool calls a model
	// may choose to make. Empty: the grammar applies from the first token.
	GrammarTriggers []string
}

// DefaultRepeatLastN is the penalty window used when RepeatLastN is 0.
const DefaultRepeatLastN = 64

// Greedy reports whether the config always picks the most likely token.
func (c Config) Greedy() bool { return c.Temperature == 0 }

func (c Config) penalties() bool {
	return (c.RepeatPenalty != 0 && c.RepeatPenalty != 1) || c.FrequencyPenalty != 0 || c.PresencePenalty != 0
}

// Validate checks the ranges of the fields (the grammar is checked by New).
func (c Config) Validate() error {
	bad := func(field string, v any, want string) error {
		return fmt.Errorf("%s = %v, want %s: %w", field, v, want, ErrInvalidConfig)
	}
	switch {
	case c.Temperature < 0 || c.Temperature != c.Temperature:
		return bad("Temperature", c.Temperature, "≥ 0")
	case c.TopK < 0:
		return bad("TopK", c.TopK, "≥ 0")
	case c.TopP < 0 || c.TopP > 1:
		return bad("TopP", c.TopP, "in [0, 1]")
	case c.MinP < 0 || c.MinP > 1:
		return bad("MinP", c.MinP, "in [0, 1]")
	case c.TypicalP < 0 || c.TypicalP > 1:
		return bad("TypicalP", c.TypicalP, "in [0, 1]")
	case c.RepeatLastN < -1:
		return bad("RepeatLastN", c.RepeatLastN, "≥ -1")
	case c.RepeatPenalty < 0:
		return bad("RepeatPenalty", c.RepeatPenalty, "≥ 0")
	case len(c.GrammarTriggers) > 0 && c.Grammar == "":
		return bad("GrammarTriggers", c.GrammarTriggers, "none without a Grammar")
	}
	return nil
}

// Sampler is a llama.cpp sampler chain built from a Config. It keeps state
// (recent tokens for penalties, the grammar's position), so use one per
// generation stream. It is safe for concurrent use, but calls are serialised.
// A sampler with a Grammar holds its model like a context does: Model.Close
// frees the model only after the sampler is closed too.
type Sampler struct {
	mu      sync.Mutex
	c       *vlm.SamplerChain
	cfg     Config
	seed    uint32
	nVocab  int
	model   *llama.Model // held (Acquire) while a grammar keeps the model's vocabulary; nil otherwise
	cleanup runtime.Cleanup
}

// New builds a sampler for model m.
func New(m *llama.Model, cfg Config) (*Sampler, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	info, err := m.Info()
	if err != nil {
		return nil, err
	}
	for t := range cfg.LogitBias {
		if t < 0 || int(t) >= info.NVocab {
			return nil, fmt.Errorf("LogitBias for token %d of a %d-token vocabulary: %w", t, info.NVocab, ErrInvalidConfig)
		}
	}
	seed := cfg.Seed
	if seed == 0 && !cfg.Greedy() {
		var b [4]byte
		_, _ = rand.Read(b[:])
		seed = binary.LittleEndian.Uint32(b[:]) | 1
	}
	chain, err := vlm.NewSamplerChain()
	if err != nil {
		return nil, err
	}
	ok := false
	var held *llama.Model
	defer func() {
		if !ok {
			chain.Free()
			if held != nil {
				llamaaccess.Release(held)
			}
		}
	}()
	if err := chain.AddLogitBias(info.NVocab, cfg.LogitBias); err != nil {
		return nil, err
	}
	if cfg.Grammar != "" {
		root := cfg.GrammarRoot
		if root == "" {
			root = "root"
		}
		// llama.cpp's grammar keeps a pointer to the model's vocabulary:
		// the sampler holds the model until Close, as contexts do.
		if err := llamaaccess.Acquire(m); err != nil {
			return nil, err
		}
		held = m
		add := func(c *vlm.LlamaModel) error { return chain.AddGrammar(c, cfg.Grammar, root) }
		if len(cfg.GrammarTriggers) > 0 {
			add = func(c *vlm.LlamaModel) error {
				return chain.AddGrammarLazy(c, cfg.Grammar, root, cfg.GrammarTriggers, nil)
			}
		}
		if err := llamaaccess.ModelNative(m, add); err != nil {
			return nil, fmt.Errorf("%w: %w", ErrInvalidConfig, err)
		}
	}
	var errs []error
	if cfg.penalties() {
		lastN := cfg.RepeatLastN
		switch lastN {
		case 0:
			lastN = DefaultRepeatLastN
		case -1:
			// The whole context. llama_sampler_init_penalties turns the
			// penalties off for -1; llama.cpp's DRY sampler reads -1 as
			// the training context length, which bounds what a context
			// holds, so that is the window.
			lastN = info.NCtxTrain
			if lastN <= 0 {
				lastN = llama.DefaultContextSize
			}
		}
		repeat := cfg.RepeatPenalty
		if repeat == 0 {
			repeat = 1
		}
		errs = append(errs, chain.AddPenalties(lastN, repeat, cfg.FrequencyPenalty, cfg.PresencePenalty))
	}
	if cfg.Greedy() {
		errs = append(errs, chain.AddGreedy())
	} else {
		if cfg.TopK > 0 {
			errs = append(errs, chain.AddTopK(cfg.TopK))
		}
		if cfg.TypicalP > 0 && cfg.TypicalP < 1 {
			errs = append(errs, chain.AddTypical(cfg.TypicalP, 1))
		}
		if cfg.TopP > 0 && cfg.TopP < 1 {
			errs = append(errs, chain.AddTopP(cfg.TopP, 1))
		}
		if cfg.MinP > 0 {
			errs = append(errs, chain.AddMinP(cfg.MinP, 1))
		}
		errs = append(errs, chain.AddTemperature(cfg.Temperature), chain.AddDist(seed))
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	ok = true
	s := &Sampler{c: chain, cfg: cfg, seed: seed, nVocab: info.NVocab, model: held}
	s.cleanup = runtime.AddCleanup(s, func(c *vlm.SamplerChain) {
		c.Free()
		if held != nil {
			llamaaccess.Release(held)
		}
	}, chain)
	return s, nil
}

// Config returns the config the sampler was built from.
func (s *Sampler) Config() Config { return s.cfg }

// Seed returns the seed in use (the random one when Config.Seed was 0).
func (s *Sampler) Seed() uint32 { return s.seed }

// Len returns the number of llama.cpp samplers in the chain.
func (s *Sampler) Len() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.c.Valid() {
		return 0
	}
	return s.c.Len()
}

// Sample picks a token from output i of x's last Decode (-1: the last
// output) and records it in the sampler's state, as Accept does.
func (s *Sampler) Sample(x *llama.Context, i int) (llama.Token, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.c.Valid() {
		return -1, ErrClosed
	}
	var tok llama.Token
	err := llamaaccess.ContextNative(x, func(c *vlm.LlamaContext) error {
		var err error
		tok, err = s.c.Sample(c, i)
		return err
	})
	if err != nil {
		return -1, err
	}
	if tok < 0 || int(tok) >= s.nVocab {
		return -1, fmt.Errorf("sampler returned token %d (grammar exhausted?): %w", tok, ErrInvalidConfig)
	}
	return tok, nil
}

// Accept records a token the sampler did not pick (e.g. prompt tokens, so
// that penalties see them). Tokens outside the vocabulary are an error.
func (s *Sampler) Accept(t llama.Token) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.c.Valid() {
		return ErrClosed
	}
	if t < 0 || int(t) >= s.nVocab {
		return fmt.Errorf("token %d of a %d-token vocabulary: %w", t, s.nVocab, vlm.ErrInvalidArgument)
	}
	return s.c.Accept(t)
}

// Reset clears the sampler's state (recent tokens, grammar position).
func (s *Sampler) Reset() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.c.Valid() {
		return ErrClosed
	}
	return s.c.Reset()
}

// Close frees the sampler (idempotent).
func (s *Sampler) Close() error {
	if s == nil {
		return nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.c.Valid() {
		s.cleanup.Stop()
		s.c.Free()
		if s.model != nil {
			llamaaccess.Release(s.model)
			s.model = nil
		}
	}
	return nil
}
