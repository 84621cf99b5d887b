package gguf

import (
	"fmt"
	"io"
)

// File is the parsed metadata of a GGUF file: its KVs in file order and its
// tensor infos. It holds no open file; read tensor data with TensorReader or
// ReadTensor. The exported fields may be read freely; the lookup methods
// assume they are not modified after Read.
type File struct {
	Version    uint32       // GGUF version (2 or 3)
	KVs        []KV         // metadata in file order
	Tensors    []TensorInfo // tensor infos in file order
	Alignment  uint32       // data alignment (general.alignment or 32)
	DataOffset int64        // file offset of the tensor data section
	Size       int64        // file size in bytes

	keys  map[string]int
	names map[string]int
}

// KV is one metadata key/value pair.
//
// Value holds the Go value: uint8, int8, uint16, int16, uint32, int32,
// uint64, int64, float32, float64, bool or string for a scalar; for an array
// (Type == ValueArray) a slice of the element type given by ArrayType
// ([]uint8, ..., []bool, []string).
type KV struct {
	Key       string    // the metadata key, e.g. "general.architecture"
	Type      ValueType // ValueArray for arrays
	ArrayType ValueType // element type when Type == ValueArray
	Value     any       // the decoded value (see above)
}

// IsArray reports whether the value is an array.
func (kv KV) IsArray() bool { return kv.Type == ValueArray }

// TypeName describes the value's type as gguf.cpp does: "u32", "str", or
// "arr[f32]" for arrays.
func (kv KV) TypeName() string {
	if kv.IsArray() {
		return "arr[" + kv.ArrayType.String() + "]"
	}
	return kv.Type.String()
}

// Len returns the number of array elements, or 1 for a scalar.
func (kv KV) Len() int {
	switch v := kv.Value.(type) {
	case []uint8:
		return len(v)
	case []int8:
		return len(v)
	case []uint16:
		return len(v)
	case []int16:
		return len(v)
	case []uint32:
		return len(v)
	case []int32:
		return len(v)
	case []uint64:
		return len(v)
	case []int64:
		return len(v)
	case []float32:
		return len(v)
	case []float64:
		return len(v)
	case []bool:
		return len(v)
	case []string:
		return len(v)
	}
	return 1
}

// TensorInfo describes one tensor.
type TensorInfo struct {
	Name   string     // unique, at most 63 bytes
	Type   TensorType // ggml type of the data
	Shape  []uint64   // ggml order: Shape[0] is the innermost dimension (ne0)
	Offset uint64     // data offset relative to File.DataOffset
	Size   uint64     // data size in bytes
}

// Elements returns the number of values in the tensor (1 for no dimensions).
func (t TensorInfo) Elements() uint64 {
	n := uint64(1)
	for _, d := range t.Shape {
		n *= d
	}
	return n
}

// Dim returns dimension i in ggml order, 1 past the tensor's dimensions
// (as ggml pads ne with 1).
func (t TensorInfo) Dim(i int) uint64 {
	if i < len(t.Shape) {
		return t.Shape[i]
	}
	return 1
}

// Get returns the KV with the given key.
func (f *File) Get(key string) (KV, bool) {
	if f.keys != nil {
		if i, ok := f.keys[key]; ok && i < len(f.KVs) && f.KVs[i].Key == key {
			return f.KVs[i], true
		}
	}
	for _, kv := range f.KVs {
		if kv.Key == key {
			return kv, true
		}
	}
	return KV{}, false
}

func get[T any](f *File, key string) (T, bool) {
	kv, ok := f.Get(key)
	if !ok {
		var zero T
		return zero, false
	}
	v, ok := kv.Value.(T)
	return v, ok
}

// String returns the string value of key; ok is false if the key is missing
// or holds another type. The other typed getters work the same way: the
// value must have exactly that type (no conversion), as llama.cpp requires.
func (f *File) String(key string) (string, bool) { return get[string](f, key) }

// Uint8 returns the u8 value of key.
func (f *File) Uint8(key string) (uint8, bool) { return get[uint8](f, key) }

// Int8 returns the i8 value of key.
func (f *File) Int8(key string) (int8, bool) { return get[int8](f, key) }

// Uint16 returns the u16 value of key.
func (f *File) Uint16(key string) (uint16, bool) { return get[uint16](f, key) }

// Int16 returns the i16 value of key.
func (f *File) Int16(key string) (int16, bool) { return get[int16](f, key) }

// Uint32 returns the u32 value of key.
func (f *File) Uint32(key string) (uint32, bool) { return get[uint32](f, key) }

// Int32 returns the i32 value of key.
func (f *File) Int32(key string) (int32, bool) { return get[int32](f, key) }

// Uint64 returns the u64 value of key.
func (f *File) Uint64(key string) (uint64, bool) { return get[uint64](f, key) }

// Int64 returns the i64 value of key.
func (f *File) Int64(key string) (int64, bool) { return get[int64](f, key) }

// Float32 returns the f32 value of key.
func (f *File) Float32(key string) (float32, bool) { return get[float32](f, key) }

// Float64 returns the f64 value of key.
func (f *File) Float64(key string) (float64, bool) { return get[float64](f, key) }

// Bool returns the bool value of key.
func (f *File) Bool(key string) (bool, bool) { return get[bool](f, key) }

// Strings returns the string array of key. The slice is the File's own.
func (f *File) Strings(key string) ([]string, bool) { return get[[]string](f, key) }

// Float32s returns the f32 array of key. The slice is the File's own.
func (f *File) Float32s(key string) ([]float32, bool) { return get[[]float32](f, key) }

// Int32s returns the i32 array of key. The slice is the File's own.
func (f *File) Int32s(key string) ([]int32, bool) { return get[[]int32](f, key) }

// Uint32s returns the u32 array of key. The slice is the File's own.
func (f *File) Uint32s(key string) ([]uint32, bool) { return get[[]uint32](f, key) }

// Bytes returns the u8 array of key. The slice is the File's own.
func (f *File) Bytes(key string) ([]byte, bool) { return get[[]byte](f, key) }

// Architecture returns general.architecture, or "" if it is missing or not
// a string.
func (f *File) Architecture() string {
	s, _ := f.String("general.architecture")
	return s
}

// ChatTemplate returns tokenizer.chat_template, or "" if it is missing or
// not a string.
func (f *File) ChatTemplate() string {
	s, _ := f.String("tokenizer.chat_template")
	return s
}

// Tensor returns the info of the named tensor.
func (f *File) Tensor(name string) (TensorInfo, bool) {
	if f.names != nil {
		if i, ok := f.names[name]; ok && i < len(f.Tensors) && f.Tensors[i].Name == name {
			return f.Tensors[i], true
		}
	}
	for _, t := range f.Tensors {
		if t.Name == name {
			return t, true
		}
	}
	return TensorInfo{}, false
}

// TensorDataSize returns the sum of all tensors' data sizes in bytes,
// without padding.
func (f *File) TensorDataSize() uint64 {
	var n uint64
	for _, t := range f.Tensors {
		n += t.Size
	}
	return n
}

// ParamCount returns the total number of values in all tensors.
func (f *File) ParamCount() uint64 {
	var n uint64
	for _, t := range f.Tensors {
		n += t.Elements()
	}
	return n
}

// TensorReader returns a reader of the tensor's data in r, the file f was
// read from.
func (f *File) TensorReader(r io.ReaderAt, t TensorInfo) *io.SectionReader {
	return io.NewSectionReader(r, f.DataOffset+int64(t.Offset), int64(t.Size))
}

// ReadTensor reads the named tensor's data from r, the file f was read from.
func (f *File) ReadTensor(r io.ReaderAt, name string) ([]byte, error) {
	t, ok := f.Tensor(name)
	if !ok {
		return nil, fmt.Errorf("gguf: no tensor %q", name)
	}
	b := make([]byte, t.Size)
	if _, err := io.ReadFull(f.TensorReader(r, t), b); err != nil {
		return nil, fmt.Errorf("gguf: reading tensor %q: %w", name, err)
	}
	return b, nil
}
