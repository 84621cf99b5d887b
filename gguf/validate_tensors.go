package gguf

// Model validation, tensors: presence, shape and type of every tensor of the
// fully validated architectures and projectors.

import (
	"fmt"
	"slices"
)

// tensorCheck describes one expected tensor.
type tensorCheck struct {
	name     string
	shape    []uint64
	required bool
	f32Only  bool // 1-D norms and biases: the CPU add/mul kernels abort on other types
}

// checkTensor checks presence, shape (trailing 1s ignored, as llama.cpp
// compares ne) and type.
func (c *checker) checkTensor(tc tensorCheck, abortMissing, abortShape bool) (TensorInfo, bool) {
	t, ok := c.f.Tensor(tc.name)
	if !ok {
		if tc.required {
			c.add(ErrMissingTensor, abortMissing, "", tc.name, "want shape %v", tc.shape)
		}
		return t, false
	}
	if !sameShape(t.Shape, tc.shape) {
		c.add(ErrTensorShape, abortShape, "", tc.name, "shape %v, want %v", t.Shape, tc.shape)
		return t, false
	}
	if tc.f32Only && t.Type != TypeF32 {
		c.add(ErrTensorShape, true, "", tc.name, "type %s, want f32", t.Type)
		return t, false
	}
	return t, true
}

func sameShape(a, b []uint64) bool {
	for i := 0; i < MaxDims; i++ {
		if dim(a, i) != dim(b, i) {
			return false
		}
	}
	return true
}

func dim(s []uint64, i int) uint64 {
	if i < len(s) {
		return s[i]
	}
	return 1
}

func k2(arch, key string) string { return arch + "." + key }

// textTensors checks the tensors llama_model::load_tensors creates for
// LLM_ARCH_LLAMA (dense models; mixtures of experts are only checked for
// their keys) and LLM_ARCH_QWEN2VL (Qwen2-VL's and Qwen2.5-VL's text
// models). Missing, mis-shaped or extra tensors are load errors, except
// qwen2vl's q/k/v biases: optional at load, added by llm_build_qwen2vl
// without checking (SIGSEGV at context creation); non-f32 norms and biases
// abort in the CPU kernels at the first decode.
func (c *checker) textTensors(arch string, hp hparams, nVocab uint64) {
	if hp.nExpert > 0 {
		return
	}
	qwen := arch == "qwen2vl"
	e := uint64(hp.nEmbd)
	var want []tensorCheck
	want = append(want,
		tensorCheck{"token_embd.weight", []uint64{e, nVocab}, true, false},
		tensorCheck{"output_norm.weight", []uint64{e}, true, true},
		tensorCheck{"output.weight", []uint64{e, nVocab}, false, false},
	)
	rot := uint64(hp.nRot / 2)
	if qwen {
		want = append(want, tensorCheck{"output.bias", []uint64{nVocab}, false, true})
		for i := 0; i < int(hp.nLayer); i++ {
			b := func(s string) string { return fmt.Sprintf("blk.%d.%s", i, s) }
			gqa := uint64(hp.nEmbdHeadK) * uint64(hp.nHeadKV[i])
			ff := uint64(hp.nFF[i])
			want = append(want,
				tensorCheck{b("attn_norm.weight"), []uint64{e}, true, true},
				tensorCheck{b("attn_q.weight"), []uint64{e, e}, true, false},
				tensorCheck{b("attn_k.weight"), []uint64{e, gqa}, true, false},
				tensorCheck{b("attn_v.weight"), []uint64{e, gqa}, true, false},
				tensorCheck{b("attn_output.weight"), []uint64{e, e}, true, false},
				tensorCheck{b("ffn_norm.weight"), []uint64{e}, true, true},
				tensorCheck{b("ffn_gate.weight"), []uint64{e, ff}, true, false},
				tensorCheck{b("ffn_down.weight"), []uint64{ff, e}, true, false},
				tensorCheck{b("ffn_up.weight"), []uint64{e, ff}, true, false},
			)
		}
		known := make(map[string]struct{}, len(want))
		for _, tc := range want {
			known[tc.name] = struct{}{}
			c.checkTensor(tc, false, false)
		}
		reported := false
		for i := 0; i < int(hp.nLayer); i++ {
			gqa := uint64(hp.nEmbdHeadK) * uint64(hp.nHeadKV[i])
			for _, bias := range []tensorCheck{
				{fmt.Sprintf("blk.%d.attn_q.bias", i), []uint64{e}, true, true},
				{fmt.Sprintf("blk.%d.attn_k.bias", i), []uint64{gqa}, true, true},
				{fmt.Sprintf("blk.%d.attn_v.bias", i), []uint64{gqa}, true, true},
			} {
				known[bias.name] = struct{}{}
				bias.required = !reported
				before := len(c.errs)
				c.checkTensor(bias, true, false)
				if _, ok := c.f.Tensor(bias.name); !ok && len(c.errs) > before {
					reported = true // one missing bias is reported, not all
				}
			}
		}
		c.unexpected(known, arch)
		return
	}
	if hp.longrope {
		want = append(want,
			tensorCheck{"rope_factors_long.weight", []uint64{rot}, false, false},
			tensorCheck{"rope_factors_short.weight", []uint64{rot}, false, false})
	} else {
		want = append(want, tensorCheck{"rope_freqs.weight", []uint64{rot}, false, false})
	}
	for i := 0; i < int(hp.nLayer); i++ {
		b := func(s string) string { return fmt.Sprintf("blk.%d.%s", i, s) }
		hk, hv := uint64(hp.nEmbdHeadK), uint64(hp.nEmbdHdV)
		nh, nkv, ff := uint64(hp.nHead[i]), uint64(hp.nHeadKV[i]), uint64(hp.nFF[i])
		want = append(want,
			tensorCheck{b("attn_norm.weight"), []uint64{e}, true, true},
			tensorCheck{b("attn_q.weight"), []uint64{e, hk * nh}, true, false},
			tensorCheck{b("attn_k.weight"), []uint64{e, hk * nkv}, true, false},
			tensorCheck{b("attn_v.weight"), []uint64{e, hv * nkv}, true, false},
			tensorCheck{b("attn_output.weight"), []uint64{hk * nh, e}, true, false},
			tensorCheck{b("attn_q.bias"), []uint64{e}, false, true},
			tensorCheck{b("attn_k.bias"), []uint64{hk * nkv}, false, true},
			tensorCheck{b("attn_v.bias"), []uint64{hv * nkv}, false, true},
			tensorCheck{b("attn_output.bias"), []uint64{e}, false, true},
			tensorCheck{b("ffn_norm.weight"), []uint64{e}, true, true},
			tensorCheck{b("ffn_gate.weight"), []uint64{e, ff}, true, false},
			tensorCheck{b("ffn_down.weight"), []uint64{ff, e}, true, false},
			tensorCheck{b("ffn_up.weight"), []uint64{e, ff}, true, false},
			tensorCheck{b("ffn_gate.bias"), []uint64{ff}, false, true},
			tensorCheck{b("ffn_down.bias"), []uint64{e}, false, true},
			tensorCheck{b("ffn_up.bias"), []uint64{ff}, false, true},
		)
	}
	known := make(map[string]struct{}, len(want))
	for _, tc := range want {
		known[tc.name] = struct{}{}
		c.checkTensor(tc, false, false)
	}
	c.unexpected(known, arch)
}

// unexpected reports the tensors the architecture does not create.
func (c *checker) unexpected(known map[string]struct{}, arch string) {
	for _, t := range c.f.Tensors {
		if _, ok := known[t.Name]; !ok {
			c.add(ErrUnexpectedTensor, false, "", t.Name, "not a %s tensor (llama.cpp: wrong number of tensors)", arch)
		}
	}
}

// Text architectures and projector types whose every tensor the
// validation checks (presence, shape, type); for the others it checks the
// container, the keys and the tokenizer, and llama.cpp's loader the rest —
// which it mostly does with errors, but not always (a graph can use a
// tensor that was optional at load and crash).
var (
	fullyValidatedArchitectures = []string{"llama", "qwen2vl"}
	fullyValidatedProjectors    = []string{"mlp", "idefics3", "gemma3", typeQwen2VL, typeQwen25VL, "qwen2.5o", typeQwen3VL}
)

// FullyValidatedArchitectures returns the text architectures ValidateModel
// checks completely, tensors included.
func FullyValidatedArchitectures() []string { return slices.Clone(fullyValidatedArchitectures) }

// FullyValidatedProjectorTypes returns the projector types ValidateProjector
// checks completely, tensors included.
func FullyValidatedProjectorTypes() []string { return slices.Clone(fullyValidatedProjectors) }
