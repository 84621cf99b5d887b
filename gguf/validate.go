package gguf

import (
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"
)

// Validation error classes. Every *ValidationError matches ErrInvalid and
// its Kind (one of these) with errors.Is, and ErrWouldAbort when the pinned
// llama.cpp would abort or crash the process on the problem rather than
// return an error. Read may report ErrBadAlignment and ErrDuplicateTensor
// itself, inside a *FormatError.
var (
	ErrInvalid          = errors.New("gguf: file fails validation")
	ErrWouldAbort       = errors.New("gguf: llama.cpp would abort the process")
	ErrBadAlignment     = errors.New("general.alignment is not a power-of-two u32")
	ErrDuplicateKey     = errors.New("duplicate metadata key")
	ErrDuplicateTensor  = errors.New("duplicate tensor name")
	ErrDuplicateToken   = errors.New("duplicate token string")
	ErrTokenArray       = errors.New("tokenizer array of the wrong type or length")
	ErrSpecialToken     = errors.New("bad special token id")
	ErrByteTokens       = errors.New("SPM vocabulary without its byte tokens")
	ErrKeyType          = errors.New("metadata key of the wrong type")
	ErrMissingKey       = errors.New("required metadata key missing")
	ErrBadValue         = errors.New("metadata value not allowed")
	ErrMissingTensor    = errors.New("required tensor missing")
	ErrUnexpectedTensor = errors.New("unexpected tensor")
	ErrTensorShape      = errors.New("tensor of the wrong shape or type")
	ErrLayout           = errors.New("tensor data not laid out as ggml writes it")
	ErrUnknownProjector = errors.New("unknown projector type")
)

// ValidationError is one problem ValidateModel or ValidateProjector found.
type ValidationError struct {
	Kind   error  // the class: ErrDuplicateToken, ErrKeyType, ...
	Key    string // the metadata key involved, if any
	Tensor string // the tensor involved, if any
	Reason string // what is wrong, in words
	Abort  bool   // the pinned llama.cpp would abort/crash on it
}

// Error describes the problem, its key or tensor, and whether it is abort-class.
func (e *ValidationError) Error() string {
	var b strings.Builder
	b.WriteString("gguf: ")
	b.WriteString(e.Kind.Error())
	if e.Key != "" {
		fmt.Fprintf(&b, " (key %q)", e.Key)
	}
	if e.Tensor != "" {
		fmt.Fprintf(&b, " (tensor %q)", e.Tensor)
	}
	if e.Reason != "" {
		b.WriteString(": ")
		b.WriteString(e.Reason)
	}
	if e.Abort {
		b.WriteString(" [would abort llama.cpp]")
	}
	return b.String()
}

// Is reports whether target is ErrInvalid, the error's Kind, or
// ErrWouldAbort for an abort-class problem.
func (e *ValidationError) Is(target error) bool {
	return target == ErrInvalid || target == e.Kind || (e.Abort && target == ErrWouldAbort)
}

// maxProblems bounds how many problems one validation reports.
const maxProblems = 32

type checker struct {
	f    *File
	errs []error
}

func (c *checker) add(kind error, abort bool, key, tensor, format string, args ...any) {
	if len(c.errs) >= maxProblems {
		return
	}
	c.errs = append(c.errs, &ValidationError{Kind: kind, Key: key, Tensor: tensor, Reason: fmt.Sprintf(format, args...), Abort: abort})
}

func (c *checker) err() error {
	return errors.Join(c.errs...)
}

// typed checks that key, when present, has scalar type t. A wrong type is
// reported as abort-class when abort is set (llama.cpp's gguf getters
// assert); a missing key only when required. It returns the value and
// whether it is present with the right type.
func (c *checker) typed(key string, t ValueType, required, abortType, abortMissing bool) (any, bool) {
	kv, ok := c.f.Get(key)
	if !ok {
		if required {
			c.add(ErrMissingKey, abortMissing, key, "", "want %s", t)
		}
		return nil, false
	}
	if kv.Type != t {
		c.add(ErrKeyType, abortType, key, "", "type %s, want %s", kv.TypeName(), t)
		return nil, false
	}
	return kv.Value, true
}

func (c *checker) u32(key string, required, abortType, abortMissing bool) (uint32, bool) {
	v, ok := c.typed(key, ValueUint32, required, abortType, abortMissing)
	if !ok {
		return 0, false
	}
	return v.(uint32), true
}

func (c *checker) f32(key string, required, abortType, abortMissing bool) (float32, bool) {
	v, ok := c.typed(key, ValueFloat32, required, abortType, abortMissing)
	if !ok {
		return 0, false
	}
	return v.(float32), true
}

func (c *checker) str(key string, required, abortType, abortMissing bool) (string, bool) {
	v, ok := c.typed(key, ValueString, required, abortType, abortMissing)
	if !ok {
		return "", false
	}
	return v.(string), true
}

func (c *checker) boolean(key string, required, abortType, abortMissing bool) (bool, bool) {
	v, ok := c.typed(key, ValueBool, required, abortType, abortMissing)
	if !ok {
		return false, false
	}
	return v.(bool), true
}

// container checks what gguf.cpp checks when it loads a file, for a File
// that did not come from Read (Read already rejects most of it), and that
// the tensor data is laid out exactly as ggml expects: each offset the sum
// of the previous tensors' sizes padded to the alignment.
func (c *checker) container() {
	f := c.f
	if kv, ok := f.Get(KeyAlignment); ok {
		a, isU32 := kv.Value.(uint32)
		switch {
		case !isU32:
			c.add(ErrBadAlignment, true, KeyAlignment, "", "type %s, want u32", kv.TypeName())
		case a == 0 || a&(a-1) != 0:
			c.add(ErrBadAlignment, false, KeyAlignment, "", "%d is not a power of two", a)
		}
	}
	keys := make(map[string]struct{}, len(f.KVs))
	for _, kv := range f.KVs {
		if _, dup := keys[kv.Key]; dup {
			c.add(ErrDuplicateKey, false, kv.Key, "", "key appears twice")
		}
		keys[kv.Key] = struct{}{}
	}
	align := uint64(f.Alignment)
	if align == 0 || align&(align-1) != 0 {
		align = DefaultAlignment
	}
	names := make(map[string]struct{}, len(f.Tensors))
	var next uint64
	for _, t := range f.Tensors {
		if _, dup := names[t.Name]; dup {
			c.add(ErrDuplicateTensor, false, "", t.Name, "name appears twice")
		}
		names[t.Name] = struct{}{}
		if len(t.Name) > MaxTensorNameLen {
			c.add(ErrTensorShape, false, "", t.Name, "name longer than %d bytes", MaxTensorNameLen)
		}
		_, size, err := tensorBytes(t.Type, t.Shape)
		if err != nil {
			c.add(ErrTensorShape, false, "", t.Name, "%v", err)
			continue
		}
		if t.Offset != next {
			c.add(ErrLayout, false, "", t.Name, "data offset %d, ggml expects %d", t.Offset, next)
		}
		next = t.Offset + pad(size, align)
	}
}

// ValidateModel checks a text model for what makes the pinned llama.cpp
// abort, crash or fail while loading or tokenizing: the container (see
// ErrBadAlignment, ErrDuplicateTensor, ErrLayout), the types and values of
// the architecture's hyperparameter keys, the tokenizer (tokens, scores,
// token types, merges, special token ids, duplicate tokens, SPM byte
// tokens), and for the "llama" architecture the presence, shapes and types
// of all tensors. It returns nil or the problems found, joined (at most 32),
// each a *ValidationError.
func ValidateModel(f *File) error {
	c := &checker{f: f}
	c.container()
	c.mmapAlignment()
	arch, ok := c.str("general.architecture", true, false, false)
	if !ok {
		return c.err()
	}
	if arch == "clip" {
		c.add(ErrBadValue, false, "general.architecture", "", "a vision projector (clip), not a text model")
		return c.err()
	}
	hp := c.hparams(arch)
	nVocab := c.vocab()
	if arch == "baichuan" && hp.ok && hp.nLayer != 32 && hp.nLayer != 40 {
		// The graph handles the 7B (32 layers) and 13B (40) types only and
		// GGML_ABORTs on any other at the first decode.
		c.add(ErrBadValue, true, "baichuan.block_count", "", "%d layers: llama.cpp's baichuan graph knows 32 (7B) and 40 (13B) only", hp.nLayer)
	}
	if graphNeedsQKVBias[arch] && hp.ok && !slices.Contains(fullyValidatedArchitectures, arch) {
		// Optional at load, added unconditionally by the graph: a missing
		// bias is a null tensor there (SIGSEGV at context creation).
		// One report for the first missing bias is enough (a file
		// without them usually lacks all of them).
	layers:
		for i := range int(hp.nLayer) {
			for _, n := range []string{"attn_q", "attn_k", "attn_v"} {
				name := fmt.Sprintf("blk.%d.%s.bias", i, n)
				if _, ok := c.f.Tensor(name); !ok {
					c.add(ErrMissingTensor, true, "", name, "the %s graph adds it without checking", arch)
					break layers
				}
			}
		}
	}
	if arch == "qwen2vl" && hp.ok && hp.nRot != hp.nEmbdHeadK {
		// llm_build_qwen2vl asserts n_rot == the head size when the
		// context builds its graph
		c.add(ErrBadValue, true, k2(arch, "rope.dimension_count"), "", "%d, the qwen2vl graph asserts the head size %d", hp.nRot, hp.nEmbdHeadK)
	}
	if slices.Contains(fullyValidatedArchitectures, arch) && hp.ok && nVocab >= 0 {
		c.textTensors(arch, hp, uint64(nVocab))
	}
	return c.err()
}

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

// specialTokenKeys are the ids llama_vocab::load reads with get_key<u32>.
var specialTokenKeys = []string{
	"bos_token_id", "eos_token_id", "eot_token_id", "eom_token_id",
	"unknown_token_id", "seperator_token_id", "padding_token_id", "mask_token_id",
	"fim_pre_token_id", "fim_suf_token_id", "fim_mid_token_id", "fim_pad_token_id",
	"fim_rep_token_id", "fim_sep_token_id",
	"prefix_token_id", "suffix_token_id", "middle_token_id",
}

// defaultSpecial gives llama.cpp's default ids per tokenizer model for the
// keys where a default is not "none" (-1).
var defaultSpecial = map[string]map[string]int64{
	"llama": {"bos_token_id": 1, "eos_token_id": 2, "unknown_token_id": 0},
	"bert":  {"bos_token_id": 101, "unknown_token_id": 100, "seperator_token_id": 102, "padding_token_id": 0, "mask_token_id": 103},
	"gpt2":  {"bos_token_id": 11, "eos_token_id": 11},
	"t5":    {"eos_token_id": 1, "unknown_token_id": 2, "padding_token_id": 0},
}

var tokenizerModels = map[string]bool{
	"no_vocab": true, "none": true, "llama": true, "bert": true, "gpt2": true,
	"t5": true, "rwkv": true, "plamo2": true,
}

// Token types (tokenizer.ggml.token_type).
const tokenTypeByte = 6

func isByteTokenText(s string) bool {
	if len(s) != 6 || !strings.HasPrefix(s, "<0x") || s[5] != '>' {
		return false
	}
	return isHex(s[3]) && isHex(s[4])
}

func isHex(b byte) bool {
	return '0' <= b && b <= '9' || 'a' <= b && b <= 'f' || 'A' <= b && b <= 'F'
}

// vocab checks the tokenizer keys as llama_vocab::load reads them and
// returns the number of tokens (-1 when unknown).
func (c *checker) vocab() int {
	const p = "tokenizer.ggml."
	model, ok := c.str(p+"model", true, false, false)
	if !ok {
		return -1
	}
	if !tokenizerModels[model] {
		c.add(ErrBadValue, false, p+"model", "", "unknown tokenizer %q", model)
		return -1
	}
	c.str(p+"pre", false, false, false)
	c.u32(p+"token_type_count", false, false, false)
	if model == "no_vocab" || model == "none" {
		return 0
	}
	if model == "gpt2" {
		if kv, ok := c.f.Get(p + "merges"); !ok {
			c.add(ErrMissingKey, false, p+"merges", "", "a gpt2 (BPE) tokenizer needs merges")
		} else if !kv.IsArray() || kv.ArrayType != ValueString {
			c.add(ErrKeyType, true, p+"merges", "", "type %s, want arr[str]", kv.TypeName())
		}
	}
	if model == "t5" {
		if kv, ok := c.f.Get(p + "precompiled_charsmap"); ok && !kv.IsArray() {
			c.add(ErrKeyType, true, p+"precompiled_charsmap", "", "type %s, want an array", kv.TypeName())
		}
	}
	c.boolean(p+"add_space_prefix", false, false, false)
	c.boolean(p+"remove_extra_whitespaces", false, false, false)

	kv, ok := c.f.Get(p + "tokens")
	if !ok {
		c.add(ErrMissingKey, false, p+"tokens", "", "no vocabulary")
		return -1
	}
	tokens, ok := kv.Value.([]string)
	if !ok {
		// gguf_get_arr_str asserts the string type
		c.add(ErrKeyType, kv.Type != ValueString, p+"tokens", "", "type %s, want arr[str]", kv.TypeName())
		return -1
	}
	n := len(tokens)

	checkArr := func(key string, types ...ValueType) []int32 {
		kv, ok := c.f.Get(key)
		if !ok {
			return nil
		}
		good := kv.IsArray()
		if good {
			good = false
			for _, t := range types {
				good = good || kv.ArrayType == t
			}
		}
		if !good {
			// read as raw memory of the expected type
			c.add(ErrTokenArray, true, key, "", "type %s, want arr[%s] of %d", kv.TypeName(), types[0], n)
			return nil
		}
		if kv.Len() != n {
			c.add(ErrTokenArray, kv.Len() < n, key, "", "%d elements for %d tokens", kv.Len(), n)
			return nil
		}
		switch v := kv.Value.(type) {
		case []int32:
			return v
		case []uint32:
			out := make([]int32, len(v))
			for i, x := range v {
				out[i] = int32(x)
			}
			return out
		}
		return nil
	}
	checkArr(p+"scores", ValueFloat32)
	types := checkArr(p+"token_type", ValueInt32, ValueUint32)

	// Duplicates (GGML_ASSERT(id_to_token.size() == token_to_id.size())),
	// with llama.cpp's renaming of empty tokens.
	seen := make(map[string]int, n)
	dups := 0
	for i, s := range tokens {
		if s == "" {
			s = fmt.Sprintf("[EMPTY_%d]", i)
		}
		if j, dup := seen[s]; dup {
			if dups < 3 {
				c.add(ErrDuplicateToken, true, p+"tokens", "", "token %d %q repeats token %d", i, s, j)
			}
			dups++
			continue
		}
		seen[s] = i
	}
	if dups > 3 {
		c.add(ErrDuplicateToken, true, p+"tokens", "", "%d duplicate tokens in all", dups)
	}

	if model == "llama" {
		// byte fallback: tokenizing a character no token covers throws
		// std::out_of_range out of llama_tokenize — an abort for a C
		// caller; vlm's binding catches it, so every prompt with such a
		// character fails (observed: TestAbortClassesUnchecked in
		// package mtmd). Not abort-class through vlm.
		missing := 0
		first := -1
		for b := 0; b < 256; b++ {
			if _, ok := seen[fmt.Sprintf("<0x%02X>", b)]; !ok {
				if first < 0 {
					first = b
				}
				missing++
			}
		}
		if missing > 0 {
			c.add(ErrByteTokens, false, p+"tokens", "", "%d of the 256 byte tokens <0x00>..<0xFF> missing (first <0x%02X>): tokenizing a character no token covers fails", missing, first)
		}
	}
	if model == "bert" && types != nil {
		// The WPM tokenizer has no byte tokens: llama_vocab::load asserts
		// on a byte-typed token of a bert vocabulary.
		for i, t := range types {
			if t == tokenTypeByte {
				c.add(ErrTokenArray, true, p+"token_type", "", "token %d %q is of type byte, which a bert (WPM) tokenizer does not have", i, tokens[i])
				break
			}
		}
	}
	if model == "gpt2" && types != nil {
		// llama_token_to_piece of a BPE vocabulary prints only normal,
		// user-defined and control tokens: a byte-typed token would print
		// as "" — text silently lost.
		for i, t := range types {
			if t == tokenTypeByte {
				c.add(ErrTokenArray, false, p+"token_type", "", "token %d %q is of type byte, which a gpt2 (BPE) tokenizer prints as \"\"", i, tokens[i])
				break
			}
		}
	}
	if model == "rwkv" {
		// The RWKV tokenizer needs "\n" as a token: without it, loading
		// loops and takes gigabytes.
		_, plain := seen["\n"]
		_, escaped := seen[`\n`] // stored escaped, as the RWKV tokenizer files write it
		if !plain && !escaped {
			c.add(ErrBadValue, true, p+"tokens", "", "an rwkv vocabulary needs a \"\\n\" token")
		}
	}
	if (model == "llama" || model == "t5") && types != nil {
		for i, t := range types {
			if t == tokenTypeByte && !isByteTokenText(tokens[i]) {
				// token_to_byte takes substr(3, 2) of the text
				c.add(ErrTokenArray, len(tokens[i]) < 3, p+"token_type", "", "token %d %q has the byte type but is not <0xHH>", i, tokens[i])
				break
			}
		}
	}

	// Special ids: a present id must be a u32. llama.cpp ignores an
	// out-of-range id with a warning and keeps its default (real files with
	// e.g. padding_token_id == n_vocab load fine), so that is only a problem
	// when the id it ends up using is outside the vocabulary.
	defs := defaultSpecial[model]
	ids := map[string]int64{}
	for _, name := range specialTokenKeys {
		key := p + name
		eff, hasDef := defs[name]
		if !hasDef {
			eff = -1
		}
		if id, ok := c.u32(key, false, false, false); ok {
			if int64(id) < int64(n) {
				eff = int64(id)
			} else if eff >= int64(n) {
				c.add(ErrSpecialToken, true, key, "", "id %d outside the %d tokens, and so is llama.cpp's fallback %d", id, n, eff)
				continue
			}
		}
		if eff >= int64(n) {
			c.add(ErrSpecialToken, true, key, "", "default id %d is outside the %d tokens; set the key", eff, n)
		}
		ids[name] = eff
	}
	for _, name := range []string{"add_bos_token", "add_eos_token", "add_sep_token"} {
		on, ok := c.boolean(p+name, false, false, false)
		if !ok || !on {
			continue
		}
		need := map[string]string{"add_bos_token": "bos_token_id", "add_eos_token": "eos_token_id", "add_sep_token": "seperator_token_id"}[name]
		if id, ok := ids[need]; ok && id < 0 {
			c.add(ErrSpecialToken, true, p+name, "", "set but there is no %s", need)
		}
	}
	if kv, ok := c.f.Get("tokenizer.chat_template"); ok && kv.Type != ValueString {
		c.add(ErrKeyType, false, "tokenizer.chat_template", "", "type %s, want str", kv.TypeName())
	}
	return n
}

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

// mmapAlignment refuses a model whose tensor data does not start on a
// 32-byte boundary of the file: llama.cpp maps the file and hands the
// mapping, from the first tensor's data on, to the CPU backend as a buffer
// (ggml_backend_cpu_buffer_from_ptr), which asserts a pointer aligned to
// TENSOR_ALIGNMENT (32). That can only happen with a general.alignment
// below 32; a file with such an alignment whose data happens to start on a
// 32-byte boundary loads and runs, and is accepted.
func (c *checker) mmapAlignment() {
	kv, ok := c.f.Get(KeyAlignment)
	if !ok || len(c.f.Tensors) == 0 {
		return
	}
	a, isU32 := kv.Value.(uint32)
	if !isU32 || a == 0 || a&(a-1) != 0 || a >= DefaultAlignment {
		return
	}
	first := c.f.Tensors[0].Offset
	for _, t := range c.f.Tensors {
		first = min(first, t.Offset)
	}
	if start := uint64(c.f.DataOffset) + first; start%DefaultAlignment != 0 {
		c.add(ErrBadAlignment, true, KeyAlignment, "", "%d, and the tensor data starts at byte %d of the file, not a multiple of %d (ggml's CPU buffer asserts it when llama.cpp maps the file)", a, start, DefaultAlignment)
	}
}

func finite(v float32) bool { return !math.IsNaN(float64(v)) && !math.IsInf(float64(v), 0) }

// ValidateLayout checks only the container: general.alignment a
// power-of-two u32, unique keys and tensor names, valid tensor shapes and
// types, and each tensor's data offset exactly where ggml's writer puts it
// (the previous tensors' sizes, each padded to the alignment), as
// gguf_init_from_file requires. ValidateModel and ValidateProjector include it.
func ValidateLayout(f *File) error {
	c := &checker{f: f}
	c.container()
	return c.err()
}
