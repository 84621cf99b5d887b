package gguf

import (
	"fmt"
	"math/bits"
)

// TensorType is a ggml tensor type (enum ggml_type in ggml.h).
type TensorType uint32

// Tensor types with their ggml numbers. Numbers 4, 5, 31-33 and 36-38 are
// types that ggml has removed; they are not valid in a GGUF file.
const (
	TypeF32     TensorType = 0
	TypeF16     TensorType = 1
	TypeQ4_0    TensorType = 2
	TypeQ4_1    TensorType = 3
	TypeQ5_0    TensorType = 6
	TypeQ5_1    TensorType = 7
	TypeQ8_0    TensorType = 8
	TypeQ8_1    TensorType = 9
	TypeQ2_K    TensorType = 10
	TypeQ3_K    TensorType = 11
	TypeQ4_K    TensorType = 12
	TypeQ5_K    TensorType = 13
	TypeQ6_K    TensorType = 14
	TypeQ8_K    TensorType = 15
	TypeIQ2_XXS TensorType = 16
	TypeIQ2_XS  TensorType = 17
	TypeIQ3_XXS TensorType = 18
	TypeIQ1_S   TensorType = 19
	TypeIQ4_NL  TensorType = 20
	TypeIQ3_S   TensorType = 21
	TypeIQ2_S   TensorType = 22
	TypeIQ4_XS  TensorType = 23
	TypeI8      TensorType = 24
	TypeI16     TensorType = 25
	TypeI32     TensorType = 26
	TypeI64     TensorType = 27
	TypeF64     TensorType = 28
	TypeIQ1_M   TensorType = 29
	TypeBF16    TensorType = 30
	TypeTQ1_0   TensorType = 34
	TypeTQ2_0   TensorType = 35
	TypeMXFP4   TensorType = 39
)

// typeCount is GGML_TYPE_COUNT of the pinned ggml.
const typeCount = 40

type typeTraits struct {
	name      string
	blockSize int // values per block
	typeSize  int // bytes per block
}

// traits mirrors the blck_size / type_size columns of type_traits in the
// pinned ggml.c (block sizes from ggml-common.h: QK_K = 256).
var traits = [typeCount]typeTraits{
	TypeF32:     {"f32", 1, 4},
	TypeF16:     {"f16", 1, 2},
	TypeQ4_0:    {"q4_0", 32, 18},
	TypeQ4_1:    {"q4_1", 32, 20},
	TypeQ5_0:    {"q5_0", 32, 22},
	TypeQ5_1:    {"q5_1", 32, 24},
	TypeQ8_0:    {"q8_0", 32, 34},
	TypeQ8_1:    {"q8_1", 32, 36},
	TypeQ2_K:    {"q2_K", 256, 84},
	TypeQ3_K:    {"q3_K", 256, 110},
	TypeQ4_K:    {"q4_K", 256, 144},
	TypeQ5_K:    {"q5_K", 256, 176},
	TypeQ6_K:    {"q6_K", 256, 210},
	TypeQ8_K:    {"q8_K", 256, 292},
	TypeIQ2_XXS: {"iq2_xxs", 256, 66},
	TypeIQ2_XS:  {"iq2_xs", 256, 74},
	TypeIQ3_XXS: {"iq3_xxs", 256, 98},
	TypeIQ1_S:   {"iq1_s", 256, 50},
	TypeIQ4_NL:  {"iq4_nl", 32, 18},
	TypeIQ3_S:   {"iq3_s", 256, 110},
	TypeIQ2_S:   {"iq2_s", 256, 82},
	TypeIQ4_XS:  {"iq4_xs", 256, 136},
	TypeI8:      {"i8", 1, 1},
	TypeI16:     {"i16", 1, 2},
	TypeI32:     {"i32", 1, 4},
	TypeI64:     {"i64", 1, 8},
	TypeF64:     {"f64", 1, 8},
	TypeIQ1_M:   {"iq1_m", 256, 56},
	TypeBF16:    {"bf16", 1, 2},
	TypeTQ1_0:   {"tq1_0", 256, 54},
	TypeTQ2_0:   {"tq2_0", 256, 66},
	TypeMXFP4:   {"mxfp4", 32, 17},
}

func (t TensorType) traits() (typeTraits, bool) {
	if t >= typeCount {
		return typeTraits{}, false
	}
	tr := traits[t]
	return tr, tr.blockSize > 0
}

// Valid reports whether t is a tensor type the pinned ggml can load.
func (t TensorType) Valid() bool {
	_, ok := t.traits()
	return ok
}

// String returns ggml's name for the type ("f32", "q8_0", "q4_K", ...) or
// "type(N)" for an unknown number.
func (t TensorType) String() string {
	if tr, ok := t.traits(); ok {
		return tr.name
	}
	return fmt.Sprintf("type(%d)", uint32(t))
}

// BlockSize returns the number of values per block (32 for Q8_0, 1 for F32),
// or 0 for an unknown type.
func (t TensorType) BlockSize() int {
	tr, _ := t.traits()
	return tr.blockSize
}

// BlockBytes returns the number of bytes per block (34 for Q8_0, 4 for F32, 2
// for F16), or 0 for an unknown type.
func (t TensorType) BlockBytes() int {
	tr, _ := t.traits()
	return tr.typeSize
}

// RowBytes returns the number of bytes that n values of type t take. It fails
// for an unknown type, when n is not a multiple of the type's block size, or
// when the size does not fit in a uint64.
func RowBytes(t TensorType, n uint64) (uint64, error) {
	tr, ok := t.traits()
	if !ok {
		return 0, fmt.Errorf("gguf: unknown tensor type %d", uint32(t))
	}
	bs := uint64(tr.blockSize)
	if n%bs != 0 {
		return 0, fmt.Errorf("gguf: %d values of type %s: not a multiple of the block size %d", n, t, bs)
	}
	hi, lo := bits.Mul64(n/bs, uint64(tr.typeSize))
	if hi != 0 {
		return 0, fmt.Errorf("gguf: %d values of type %s: size overflows", n, t)
	}
	return lo, nil
}

// tensorBytes returns the element count and byte size of a tensor with the
// given type and shape, checking what gguf.cpp checks: 0..4 dimensions, every
// dimension >= 1, the element count below 2^63-1, the first dimension a
// multiple of the block size.
func tensorBytes(t TensorType, shape []uint64) (elems, size uint64, err error) {
	if len(shape) > MaxDims {
		return 0, 0, fmt.Errorf("%d dimensions, at most %d allowed", len(shape), MaxDims)
	}
	tr, ok := t.traits()
	if !ok {
		return 0, 0, fmt.Errorf("unknown tensor type %d", uint32(t))
	}
	elems = 1
	for i, d := range shape {
		if d == 0 {
			return 0, 0, fmt.Errorf("dimension %d is 0", i)
		}
		hi, lo := bits.Mul64(elems, d)
		if hi != 0 || lo >= 1<<63-1 {
			return 0, 0, fmt.Errorf("element count overflows (shape %v)", shape)
		}
		elems = lo
	}
	ne0 := uint64(1)
	if len(shape) > 0 {
		ne0 = shape[0]
	}
	if ne0%uint64(tr.blockSize) != 0 {
		return 0, 0, fmt.Errorf("first dimension %d of a %s tensor is not a multiple of the block size %d", ne0, t, tr.blockSize)
	}
	hi, lo := bits.Mul64(elems/uint64(tr.blockSize), uint64(tr.typeSize))
	if hi != 0 {
		return 0, 0, fmt.Errorf("byte size overflows (shape %v)", shape)
	}
	return elems, lo, nil
}

// MaxDims is the most dimensions a tensor can have (GGML_MAX_DIMS).
const MaxDims = 4

// MaxTensorNameLen is the longest tensor name ggml accepts, in bytes
// (GGML_MAX_NAME - 1).
const MaxTensorNameLen = 63

// DefaultAlignment is the data alignment of a GGUF file without a
// general.alignment key (GGUF_DEFAULT_ALIGNMENT).
const DefaultAlignment = 32

// Version is the GGUF version that Writer writes (GGUF_VERSION).
const Version = 3

// KeyAlignment is the metadata key that sets a file's data alignment.
const KeyAlignment = "general.alignment"

// ValueType is the type of a metadata value (enum gguf_type in gguf.h).
type ValueType uint32

// Metadata value types with their GGUF numbers.
const (
	ValueUint8   ValueType = 0
	ValueInt8    ValueType = 1
	ValueUint16  ValueType = 2
	ValueInt16   ValueType = 3
	ValueUint32  ValueType = 4
	ValueInt32   ValueType = 5
	ValueFloat32 ValueType = 6
	ValueBool    ValueType = 7
	ValueString  ValueType = 8
	ValueArray   ValueType = 9
	ValueUint64  ValueType = 10
	ValueInt64   ValueType = 11
	ValueFloat64 ValueType = 12
)

var valueTypeNames = [...]string{"u8", "i8", "u16", "i16", "u32", "i32", "f32", "bool", "str", "arr", "u64", "i64", "f64"}

// String returns gguf.cpp's short name for the type ("u32", "f32", "str",
// "arr", ...) or "type(N)" for an unknown number.
func (t ValueType) String() string {
	if int(t) < len(valueTypeNames) {
		return valueTypeNames[t]
	}
	return fmt.Sprintf("type(%d)", uint32(t))
}

// size returns the encoded size of one value of a fixed-size type, 0 for
// string, array and unknown types.
func (t ValueType) size() int {
	switch t {
	case ValueUint8, ValueInt8, ValueBool:
		return 1
	case ValueUint16, ValueInt16:
		return 2
	case ValueUint32, ValueInt32, ValueFloat32:
		return 4
	case ValueUint64, ValueInt64, ValueFloat64:
		return 8
	}
	return 0
}
