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
	c *C.struct_llama_sampler
}

// NewSamplerChain creates an empty chain.
func NewSamplerChain() *SamplerChain {
	Init()
	p := C.llama_sampler_chain_default_params()
	p.no_perf = true
	return &SamplerChain{c: C.llama_sampler_chain_init(p)}
}

// Free releases the chain and every sampler in it.
func (s *SamplerChain) Free() {
	if s == nil || s.c == nil {
		return
	}
	C.llama_sampler_free(s.c)
	s.c = nil
}

// Valid reports whether the chain exists and is not freed.
func (s *SamplerChain) Valid() bool { return s != nil && s.c != nil }

// Len returns the number of samplers in the chain.
func (s *SamplerChain) Len() int { return int(C.llama_sampler_chain_n(s.c)) }

func (s *SamplerChain) add(smpl *C.struct_llama_sampler) { C.llama_sampler_chain_add(s.c, smpl) }

// AddGreedy adds the arg-max selector.
func (s *SamplerChain) AddGreedy() { s.add(C.llama_sampler_init_greedy()) }

// AddDist adds random selection from the distribution, seeded.
func (s *SamplerChain) AddDist(seed uint32) { s.add(C.llama_sampler_init_dist(C.uint32_t(seed))) }

// AddTopK keeps the k most likely tokens.
func (s *SamplerChain) AddTopK(k int) { s.add(C.llama_sampler_init_top_k(C.int32_t(k))) }

// AddTopP keeps the smallest set of tokens whose probability reaches p.
func (s *SamplerChain) AddTopP(p float32, minKeep int) {
	s.add(C.llama_sampler_init_top_p(C.float(p), C.size_t(minKeep)))
}

// AddMinP keeps tokens at least p times as likely as the most likely one.
func (s *SamplerChain) AddMinP(p float32, minKeep int) {
	s.add(C.llama_sampler_init_min_p(C.float(p), C.size_t(minKeep)))
}

// AddTypical adds locally typical sampling with mass p.
func (s *SamplerChain) AddTypical(p float32, minKeep int) {
	s.add(C.llama_sampler_init_typical(C.float(p), C.size_t(minKeep)))
}

// AddTemperature scales logits by 1/t.
func (s *SamplerChain) AddTemperature(t float32) { s.add(C.llama_sampler_init_temp(C.float(t))) }

// AddPenalties penalises the last lastN tokens: repeat (1 = off), frequency
// and presence (0 = off).
func (s *SamplerChain) AddPenalties(lastN int, repeat, frequency, presence float32) {
	s.add(C.llama_sampler_init_penalties(C.int32_t(lastN), C.float(repeat), C.float(frequency), C.float(presence)))
}

// AddLogitBias adds bias[token] to the logit of each token.
func (s *SamplerChain) AddLogitBias(nVocab int, bias map[Token]float32) {
	if len(bias) == 0 {
		return
	}
	arr := (*C.llama_logit_bias)(C.malloc(C.size_t(len(bias)) * C.size_t(unsafe.Sizeof(C.llama_logit_bias{}))))
	defer C.free(unsafe.Pointer(arr))
	view := unsafe.Slice(arr, len(bias))
	i := 0
	for t, b := range bias {
		view[i] = C.llama_logit_bias{token: C.llama_token(t), bias: C.float(b)}
		i++
	}
	s.add(C.llama_sampler_init_logit_bias(C.int32_t(nVocab), C.int32_t(len(bias)), arr))
}

// AddGrammar constrains output to a GBNF grammar starting at rule root.
func (s *SamplerChain) AddGrammar(m *LlamaModel, grammar, root string) error {
	if !m.Valid() {
		return ErrClosed
	}
	cg := C.CString(grammar)
	defer C.free(unsafe.Pointer(cg))
	cr := C.CString(root)
	defer C.free(unsafe.Pointer(cr))
	g := C.llama_sampler_init_grammar(m.vocab, cg, cr)
	if g == nil {
		return fmt.Errorf("GBNF grammar does not parse (root %q; llama.cpp's log says where): %w", root, ErrInvalidArgument)
	}
	s.add(g)
	return nil
}

// Sample selects a token from output i of the context's last Decode and
// accepts it into the chain's state.
func (s *SamplerChain) Sample(x *LlamaContext, i int) Token {
	return Token(C.llama_sampler_sample(s.c, x.c, C.int32_t(i)))
}

// Accept records t in the state of the chain's samplers (penalties, grammar).
func (s *SamplerChain) Accept(t Token) { C.llama_sampler_accept(s.c, C.llama_token(t)) }

// Reset clears the state of the chain's samplers.
func (s *SamplerChain) Reset() { C.llama_sampler_reset(s.c) }
