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
