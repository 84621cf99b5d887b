package vlm

/*
#include "binding.h"
*/
import "C"

import (
	"fmt"
	"unsafe"
)

// SamplerChain is a llama.cpp sampler chain (llama_sampler_chain_*). Samplers
// are added in order; the last one must select a token (greedy or dist).
type SamplerChain struct {
	c       *C.struct_llama_sampler
	grammar *C.struct_llama_sampler // the grammar sampler in c, owned by c; nil when none
}

// NewSamplerChain creates an empty chain.
func NewSamplerChain() (*SamplerChain, error) {
	Init()
	p := C.llama_sampler_chain_default_params()
	p.no_perf = true
	c := C.llama_sampler_chain_init(p)
	if c == nil {
		return nil, fmt.Errorf("llama_sampler_chain_init failed: %w", ErrInvalidArgument)
	}
	return &SamplerChain{c: c}, nil
}

// Free releases the chain and every sampler in it.
func (s *SamplerChain) Free() {
	if s == nil || s.c == nil {
		return
	}
	C.llama_sampler_free(s.c)
	s.c, s.grammar = nil, nil
}

// Valid reports whether the chain exists and is not freed.
func (s *SamplerChain) Valid() bool { return s != nil && s.c != nil }

// Len returns the number of samplers in the chain (0 once freed).
func (s *SamplerChain) Len() int {
	if !s.Valid() {
		return 0
	}
	return int(C.llama_sampler_chain_n(s.c))
}

// add appends smpl, which the chain then owns; a nil smpl is an init that
// failed, and a freed chain frees smpl instead.
func (s *SamplerChain) add(name string, smpl *C.struct_llama_sampler) error {
	if smpl == nil {
		return fmt.Errorf("llama_sampler_init_%s failed: %w", name, ErrInvalidArgument)
	}
	if !s.Valid() {
		C.llama_sampler_free(smpl)
		return ErrClosed
	}
	C.llama_sampler_chain_add(s.c, smpl)
	return nil
}

// AddGreedy adds the arg-max selector.
func (s *SamplerChain) AddGreedy() error { return s.add("greedy", C.llama_sampler_init_greedy()) }

// AddDist adds random selection from the distribution, seeded.
func (s *SamplerChain) AddDist(seed uint32) error {
	return s.add("dist", C.llama_sampler_init_dist(C.uint32_t(seed)))
}

// AddTopK keeps the k most likely tokens.
func (s *SamplerChain) AddTopK(k int) error {
	return s.add("top_k", C.llama_sampler_init_top_k(C.int32_t(k)))
}

// AddTopP keeps the smallest set of tokens whose probability reaches p.
func (s *SamplerChain) AddTopP(p float32, minKeep int) error {
	return s.add("top_p", C.llama_sampler_init_top_p(C.float(p), C.size_t(minKeep)))
}

// AddMinP keeps tokens at least p times as likely as the most likely one.
func (s *SamplerChain) AddMinP(p float32, minKeep int) error {
	return s.add("min_p", C.llama_sampler_init_min_p(C.float(p), C.size_t(minKeep)))
}

// AddTypical adds locally typical sampling with mass p.
func (s *SamplerChain) AddTypical(p float32, minKeep int) error {
	return s.add("typical", C.llama_sampler_init_typical(C.float(p), C.size_t(minKeep)))
}

// AddTemperature scales logits by 1/t.
func (s *SamplerChain) AddTemperature(t float32) error {
	return s.add("temp", C.llama_sampler_init_temp(C.float(t)))
}

// AddPenalties penalises the last lastN tokens: repeat (1 = off), frequency
// and presence (0 = off). lastN must be > 0: llama.cpp's own -1 ("the whole
// context") is resolved by the caller, because llama_sampler_init_penalties
// turns the penalties off for it.
func (s *SamplerChain) AddPenalties(lastN int, repeat, frequency, presence float32) error {
	if lastN <= 0 {
		return fmt.Errorf("penalty window %d: %w", lastN, ErrInvalidArgument)
	}
	return s.add("penalties", C.llama_sampler_init_penalties(C.int32_t(lastN), C.float(repeat), C.float(frequency), C.float(presence)))
}

// AddLogitBias adds bias[token] to the logit of each token.
func (s *SamplerChain) AddLogitBias(nVocab int, bias map[Token]float32) error {
	if len(bias) == 0 {
		return nil
	}
	arr := (*C.llama_logit_bias)(C.malloc(C.size_t(len(bias)) * C.size_t(unsafe.Sizeof(C.llama_logit_bias{}))))
	defer C.free(unsafe.Pointer(arr))
	view := unsafe.Slice(arr, len(bias))
	i := 0
	for t, b := range bias {
		view[i] = C.llama_logit_bias{token: C.llama_token(t), bias: C.float(b)}
		i++
	}
	return s.add("logit_bias", C.llama_sampler_init_logit_bias(C.int32_t(nVocab), C.int32_t(len(bias)), arr))
}

// AddGrammar constrains output to a GBNF grammar starting at rule root, and
// to valid UTF-8: llama.cpp's grammar engine matches code points and lets
// through byte tokens that spell some overlong forms, so tokens whose bytes
// would make the output invalid UTF-8 (overlong forms, surrogates, code
// points above U+10FFFF, stray or missing continuation bytes) are banned
// too. The grammar keeps a pointer to m's vocabulary: m must outlive the
// chain.
func (s *SamplerChain) AddGrammar(m *LlamaModel, grammar, root string) error {
	if !m.Valid() || !s.Valid() {
		return ErrClosed
	}
	cg := C.CString(grammar)
	defer C.free(unsafe.Pointer(cg))
	cr := C.CString(root)
	defer C.free(unsafe.Pointer(cr))
	g := C.vlm_sampler_init_utf8_grammar(m.vocab, cg, cr)
	if g == nil {
		return fmt.Errorf("GBNF grammar does not parse (root %q; llama.cpp's log says where): %w", root, ErrInvalidArgument)
	}
	if err := s.add("grammar", g); err != nil {
		return err
	}
	s.grammar = g
	return nil
}

// AddGrammarLazy is AddGrammar (valid UTF-8 included) for a lazy grammar: it constrains nothing
// until the output so far matches one of the trigger patterns (ECMAScript
// regular expressions matched against the whole output; the grammar then
// applies from the pattern's first capture group, or from the match) or
// one of the trigger tokens is sampled (the grammar applies from it),
// as llama_sampler_init_grammar_lazy_patterns does. m must outlive the chain.
func (s *SamplerChain) AddGrammarLazy(m *LlamaModel, grammar, root string, patterns []string, tokens []Token) error {
	if !m.Valid() || !s.Valid() {
		return ErrClosed
	}
	if len(patterns) == 0 && len(tokens) == 0 {
		return fmt.Errorf("a lazy grammar needs a trigger pattern or token: %w", ErrInvalidArgument)
	}
	cg := C.CString(grammar)
	defer C.free(unsafe.Pointer(cg))
	cr := C.CString(root)
	defer C.free(unsafe.Pointer(cr))
	var cpats **C.char
	if len(patterns) > 0 {
		cpats = (**C.char)(C.malloc(C.size_t(len(patterns)) * C.size_t(unsafe.Sizeof(uintptr(0)))))
		defer C.free(unsafe.Pointer(cpats))
		view := unsafe.Slice(cpats, len(patterns))
		for i, p := range patterns {
			view[i] = C.CString(p)
			defer C.free(unsafe.Pointer(view[i]))
		}
	}
	var ctoks *C.llama_token
	if len(tokens) > 0 {
		ctoks = (*C.llama_token)(C.malloc(C.size_t(len(tokens)) * C.size_t(unsafe.Sizeof(C.llama_token(0)))))
		defer C.free(unsafe.Pointer(ctoks))
		view := unsafe.Slice(ctoks, len(tokens))
		for i, t := range tokens {
			view[i] = C.llama_token(t)
		}
	}
	var g *C.struct_llama_sampler
	var cerr C.vlm_cxx_err
	g = C.vlm_grammar_lazy(m.vocab, cg, cr, cpats, C.size_t(len(patterns)), ctoks, C.size_t(len(tokens)), &cerr)
	if err := cxxError("llama_sampler_init_grammar_lazy_patterns", &cerr); err != nil {
		return fmt.Errorf("lazy grammar: %w", err)
	}
	if g == nil {
		return fmt.Errorf("GBNF grammar does not parse (root %q; llama.cpp's log says where): %w", root, ErrInvalidArgument)
	}
	if err := s.add("grammar", g); err != nil {
		return err
	}
	s.grammar = g
	return nil
}

// Sample selects a token from output i of the context's last Decode and
// accepts it into the chain's state. Where llama_sampler_sample would abort
// the process it returns an error: no token selected (ErrInvalidArgument),
// or a grammar that allows no token the other samplers left, e.g. a finished
// grammar whose end-of-generation tokens are banned (ErrInvalidArgument; the
// state is unchanged).
func (s *SamplerChain) Sample(x *LlamaContext, i int) (Token, error) {
	if !s.Valid() || !x.Valid() {
		return -1, ErrClosed
	}
	if !x.hasOutput(i) { // llama.cpp aborts on it inside the sampler
		return -1, fmt.Errorf("no output %d in the last decode: %w", i, ErrInvalidArgument)
	}
	var status C.int
	var cerr C.vlm_cxx_err
	t := Token(C.vlm_sampler_sample(s.c, s.grammar, x.c, C.int32_t(i), &status, &cerr))
	if err := cxxError("llama_sampler_sample", &cerr); err != nil {
		return -1, err
	}
	switch status {
	case 0:
		return t, nil
	case 4:
		return -1, fmt.Errorf("the grammar allows none of the tokens left to sample (token %d picked): %w", t, ErrInvalidArgument)
	case 6:
		return -1, fmt.Errorf("output %d: %d logits are NaN or infinite (broken weights or hyperparameters): %w", i, int(t), ErrNonFinite)
	}
	return -1, fmt.Errorf("sampling output %d failed (status %d): %w", i, int(status), ErrInvalidArgument)
}

// Accept records t in the state of the chain's samplers (penalties, grammar).
// A token the chain's grammar does not allow now is refused
// (ErrInvalidArgument) and leaves the state as it was: llama.cpp would throw
// and abort the process.
func (s *SamplerChain) Accept(t Token) error {
	if !s.Valid() {
		return ErrClosed
	}
	if s.grammar != nil && !bool(C.vlm_grammar_allows(s.grammar, C.llama_token(t))) {
		return fmt.Errorf("token %d is not allowed by the grammar here: %w", t, ErrInvalidArgument)
	}
	var cerr C.vlm_cxx_err
	C.vlm_cxx_sampler_accept(s.c, C.llama_token(t), &cerr)
	return cxxError("llama_sampler_accept", &cerr)
}

// Reset clears the state of the chain's samplers.
func (s *SamplerChain) Reset() error {
	if !s.Valid() {
		return ErrClosed
	}
	C.llama_sampler_reset(s.c)
	return nil
}
