package gguf

// Model validation, hparams: the hyperparameter keys llama.cpp reads for an
// architecture, checked against what its loader and graph assert.

import (
	"math"
)

type hparams struct {
	ok                   bool
	nEmbd, nLayer        uint32
	nFF, nHead, nHeadKV  []uint32 // per layer
	nEmbdHeadK, nEmbdHdV uint32
	nRot                 uint32
	nExpert              uint32
	longrope             bool
}

// perLayer reads a key llama.cpp reads with get_key_or_arr: a u32, or an
// array of u32/i32 with one element per layer.
// With known false the layer count is unknown and only the type is checked.
func (c *checker) perLayer(key string, nLayer uint32, known bool, def []uint32) []uint32 {
	kv, ok := c.f.Get(key)
	if !ok {
		return def
	}
	out := make([]uint32, nLayer)
	switch {
	case kv.Type == ValueUint32:
		for i := range out {
			out[i] = kv.Value.(uint32)
		}
	case kv.IsArray() && (kv.ArrayType == ValueUint32 || kv.ArrayType == ValueInt32):
		if !known {
			return def
		}
		if kv.Len() != int(nLayer) {
			c.add(ErrBadValue, false, key, "", "array of %d elements, want one per layer (%d)", kv.Len(), nLayer)
			return def
		}
		switch v := kv.Value.(type) {
		case []uint32:
			copy(out, v)
		case []int32:
			for i, x := range v {
				out[i] = uint32(x)
			}
		}
	case kv.IsArray() && (kv.ArrayType == ValueFloat32 || kv.ArrayType == ValueString):
		// get_arr's GGML_ASSERT on the element type
		c.add(ErrKeyType, true, key, "", "type %s, want u32 or an array of u32/i32", kv.TypeName())
		return def
	default:
		c.add(ErrKeyType, false, key, "", "type %s, want u32 or an array of u32/i32", kv.TypeName())
		return def
	}
	return out
}

// maxLayers is LLAMA_MAX_LAYERS, maxExperts LLAMA_MAX_EXPERTS.
const (
	maxLayers  = 512
	maxExperts = 512
)

// moeAsserting are the architectures whose load_tensors GGML_ASSERTs
// n_expert > 0 and n_expert_used > 0 (read from the pinned llama-model.cpp).
var moeAsserting = map[string]bool{
	"bailingmoe2": true, "glm4moe": true, "grovemoe": true, "llada-moe": true, "smallthinker": true, "lfm2moe": true,
}

// graphNeedsQKVBias are the architectures whose graph adds the per-layer
// q/k/v biases without checking that the (optional) tensors were loaded
// (read from the pinned models/*.cpp: dream, pangu-embedded, qwen2vl).
var graphNeedsQKVBias = map[string]bool{"dream": true, "pangu-embedded": true, "qwen2vl": true}

var ropeScalingTypes = map[string]bool{"none": true, "linear": true, "yarn": true, "longrope": true}

// hparams checks the keys llama_model::load_hparams reads for every
// architecture, and for "llama" its own.
func (c *checker) hparams(arch string) hparams {
	k := func(s string) string { return arch + "." + s }
	var hp hparams
	_, ok1 := c.u32(k("context_length"), true, false, false)
	nEmbd, ok2 := c.u32(k("embedding_length"), true, false, false)
	nLayer, ok3 := c.u32(k("block_count"), true, false, false)
	hp.ok = ok1 && ok2 && ok3
	if ok3 && nLayer > maxLayers {
		c.add(ErrBadValue, false, k("block_count"), "", "%d layers, at most %d", nLayer, maxLayers)
		hp.ok = false
	}
	hp.nEmbd, hp.nLayer = nEmbd, nLayer

	nExpert, _ := c.u32(k("expert_count"), false, false, false)
	nUsed, _ := c.u32(k("expert_used_count"), false, false, false)
	nGroups, _ := c.u32(k("expert_group_count"), false, false, false)
	nGroupUsed, _ := c.u32(k("expert_group_used_count"), false, false, false)
	hp.nExpert = nExpert
	// GGML_ASSERTs in load_hparams
	switch {
	case nExpert > maxExperts:
		c.add(ErrBadValue, true, k("expert_count"), "", "%d experts, at most %d", nExpert, maxExperts)
	case nUsed > nExpert:
		c.add(ErrBadValue, true, k("expert_used_count"), "", "%d used of %d experts", nUsed, nExpert)
	case nExpert > 0 && nUsed == 0:
		c.add(ErrBadValue, true, k("expert_used_count"), "", "0 with %d experts", nExpert)
	case nExpert > 0 && nGroups >= nExpert:
		c.add(ErrBadValue, true, k("expert_group_count"), "", "%d groups for %d experts", nGroups, nExpert)
	case nExpert > 0 && nGroups > 1 && (nExpert%nGroups != 0 || nGroupUsed == 0 || nGroupUsed >= nGroups):
		c.add(ErrBadValue, true, k("expert_group_count"), "", "%d groups (%d used) for %d experts", nGroups, nGroupUsed, nExpert)
	case nExpert == 0 && nGroups != 0:
		c.add(ErrBadValue, true, k("expert_group_count"), "", "groups without experts")
	}

	// Mixture-of-experts architectures whose tensor loading GGML_ASSERTs
	// experts (the others throw, a clean error).
	if moeAsserting[arch] && (nExpert == 0 || nUsed == 0) {
		c.add(ErrBadValue, true, k("expert_count"), "", "%s is a mixture of experts: it needs %s and %s > 0 (have %d and %d)",
			arch, k("expert_count"), k("expert_used_count"), nExpert, nUsed)
		hp.ok = false
	}
	if !hp.ok {
		nLayer = 0 // unknown: check only the per-layer keys' types
	}
	hp.nFF = c.perLayer(k("feed_forward_length"), nLayer, hp.ok, make([]uint32, nLayer))
	hp.nHead = c.perLayer(k("attention.head_count"), nLayer, hp.ok, make([]uint32, nLayer))
	hp.nHeadKV = c.perLayer(k("attention.head_count_kv"), nLayer, hp.ok, hp.nHead)

	c.boolean(k("rope.scaling.finetuned"), false, false, false)
	c.u32(k("rope.scaling.original_context_length"), false, false, false)
	c.f32(k("rope.freq_base"), false, false, false)
	if st, ok := c.str(k("rope.scaling.type"), false, false, false); ok {
		if !ropeScalingTypes[st] {
			c.add(ErrBadValue, true, k("rope.scaling.type"), "", "unknown rope scaling type %q", st)
		}
		hp.longrope = st == "longrope"
	}
	// Values the graph divides by, takes roots or logarithms of: NaN or a
	// negative epsilon trips ggml's asserts at the first decode; a rope
	// base that is not a positive number gives NaN logits forever.
	for _, key := range []string{"attention.layer_norm_rms_epsilon", "attention.layer_norm_epsilon"} {
		if v, ok := c.f32(k(key), false, false, false); ok && (v < 0 || !finite(v)) {
			c.add(ErrBadValue, true, k(key), "", "%v: a norm epsilon must be a finite number >= 0", v)
			hp.ok = false
		}
	}
	// RoPE base: ggml takes powf(base, -2/n_rot) as the step between
	// rotation frequencies. NaN, 0 and finite negative bases make it NaN
	// or infinite and every logit NaN (observed: TestRopeBaseInfinityRuns
	// in package mtmd); +Inf and -Inf make it 0 (only the first pair
	// rotates), which computes finite logits, so they are accepted.
	if v, ok := c.f32(k("rope.freq_base"), false, false, false); ok && !(v > 0) && !math.IsInf(float64(v), -1) {
		c.add(ErrBadValue, false, k("rope.freq_base"), "", "%v: the RoPE base must be a number > 0 (else every logit is NaN)", v)
	}
	// Grouped-query attention: each KV head serves n_head/n_head_kv
	// query heads; ggml asserts that this divides at context creation.
	for i := range min(len(hp.nHead), len(hp.nHeadKV)) {
		h, kv := hp.nHead[i], hp.nHeadKV[i]
		if h > 0 && kv > 0 && (kv > h || h%kv != 0) {
			c.add(ErrBadValue, true, k("attention.head_count_kv"), "", "%d KV heads for %d heads (layer %d): the KV heads must divide the heads", kv, h, i)
			hp.ok = false
			break
		}
	}
	c.f32(k("rope.scaling.factor"), false, false, false)
	c.f32(k("rope.scale_linear"), false, false, false)
	c.f32(k("rope.scaling.attn_factor"), false, false, false)
	c.u32(k("vocab_size"), false, false, false)

	var nHead uint32
	if len(hp.nHead) > 0 {
		nHead = hp.nHead[0]
	}
	if nHead > 0 {
		hp.nEmbdHeadK = hp.nEmbd / nHead
		hp.nEmbdHdV = hp.nEmbd / nHead
		if v, ok := c.u32(k("attention.key_length"), false, false, false); ok {
			hp.nEmbdHeadK = v
		}
		if v, ok := c.u32(k("attention.value_length"), false, false, false); ok {
			hp.nEmbdHdV = v
		}
		hp.nRot = hp.nEmbdHeadK
		if v, ok := c.u32(k("rope.dimension_count"), false, false, false); ok {
			hp.nRot = v
			if arch == "llama" && v != hp.nEmbdHeadK {
				c.add(ErrBadValue, false, k("rope.dimension_count"), "", "%d, llama needs the head size %d", v, hp.nEmbdHeadK)
			}
		}
	}

	if arch == "llama" || arch == "qwen2vl" {
		if _, ok := c.f32(k("attention.layer_norm_rms_epsilon"), true, false, false); !ok {
			hp.ok = false
		}
		for _, key := range []string{"feed_forward_length", "attention.head_count"} {
			if _, ok := c.f.Get(k(key)); !ok {
				c.add(ErrMissingKey, false, k(key), "", "llama needs it")
				hp.ok = false
			}
		}
		if hp.ok && nHead == 0 {
			c.add(ErrBadValue, false, k("attention.head_count"), "", "0 heads")
			hp.ok = false
		}
	}
	if arch == "qwen2vl" {
		c.ropeSections(k("rope.dimension_sections"), hp.nEmbdHeadK)
	}
	return hp
}

// ropeSections checks the M-RoPE sections that load_hparams reads for
// qwen2vl with get_key_or_arr(…, 4, required): missing, an array of another
// length or a scalar that is not an i32 throw (a clean error); an array of
// 4 f32 or strings trips get_arr's GGML_ASSERT on the element type (abort).
//
// ggml's M-RoPE kernel asserts that one of the first three sections is
// positive and that the four add up to at most the head size (observed:
// TestUncheckedQwen2VLTextCrash in package mtmd).
func (c *checker) ropeSections(key string, headDim uint32) {
	kv, ok := c.f.Get(key)
	if ok && kv.IsArray() && kv.Len() == 4 {
		if sec := int32s(kv.Value); len(sec) == 4 {
			sum := int64(sec[0]) + int64(sec[1]) + int64(sec[2]) + int64(sec[3])
			switch {
			case sec[0] <= 0 && sec[1] <= 0 && sec[2] <= 0:
				c.add(ErrBadValue, true, key, "", "%v: ggml's M-RoPE needs one of the first three sections > 0", sec)
			case headDim > 0 && sum > int64(headDim):
				c.add(ErrBadValue, true, key, "", "%v: the sections add up to %d, more than the head size %d", sec, sum, headDim)
			}
		}
	}
	switch {
	case !ok:
		c.add(ErrMissingKey, false, key, "", "want an array of 4 i32 (the M-RoPE sections)")
	case kv.IsArray() && kv.Len() != 4:
		c.add(ErrBadValue, false, key, "", "%d elements, want 4", kv.Len())
	case kv.IsArray() && (kv.ArrayType == ValueFloat32 || kv.ArrayType == ValueString):
		c.add(ErrKeyType, true, key, "", "type %s, want an array of 4 i32/u32", kv.TypeName())
	case kv.IsArray() && kv.ArrayType != ValueInt32 && kv.ArrayType != ValueUint32:
		c.add(ErrKeyType, false, key, "", "type %s, want an array of 4 i32/u32", kv.TypeName())
	case !kv.IsArray() && kv.Type != ValueInt32:
		c.add(ErrKeyType, false, key, "", "type %s, want an array of 4 i32/u32 (or one i32)", kv.TypeName())
	}
}
