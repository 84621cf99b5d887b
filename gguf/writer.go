package gguf

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
)

// MaxWriterAlignment is the largest alignment SetAlignment accepts.
const MaxWriterAlignment = 1 << 20

// Writer builds a GGUF v3 file: metadata KVs and tensors in the order they
// were added. Its output is deterministic: the same calls produce
// byte-identical files. A Writer is not safe for concurrent use.
type Writer struct {
	alignment uint32
	kvs       []writerKV
	keys      map[string]int
	tensors   []writerTensor
	names     map[string]struct{}
}

type writerKV struct {
	key   string
	typ   ValueType // element type for arrays
	array bool
	val   any // normalized: a scalar or a private copy of a slice
}

type writerTensor struct {
	name  string
	typ   TensorType
	shape []uint64
	size  uint64
	data  []byte
	fill  func() ([]byte, error)
}

// NewWriter returns an empty Writer with the default alignment of 32.
func NewWriter() *Writer {
	return &Writer{
		alignment: DefaultAlignment,
		keys:      map[string]int{},
		names:     map[string]struct{}{},
	}
}

// SetAlignment sets the data alignment, a power of two up to
// MaxWriterAlignment. A value other than 32 is also written as the u32 KV
// general.alignment (at the position of the first call that needs it; later
// calls update its value in place).
func (w *Writer) SetAlignment(n uint32) error {
	if n == 0 || n&(n-1) != 0 || n > MaxWriterAlignment {
		return fmt.Errorf("gguf: alignment %d is not a power of two in [1, %d]", n, MaxWriterAlignment)
	}
	w.alignment = n
	if i, ok := w.keys[KeyAlignment]; ok {
		w.kvs[i].val = n
		return nil
	}
	if n != DefaultAlignment {
		w.keys[KeyAlignment] = len(w.kvs)
		w.kvs = append(w.kvs, writerKV{key: KeyAlignment, typ: ValueUint32, val: n})
	}
	return nil
}

// AddKV adds a metadata key/value pair. value must be one of uint8, int8,
// uint16, int16, uint32, int32, uint64, int64, float32, float64, bool, string
// or a slice of one of those (a slice is written as a GGUF array and copied,
// so the caller may reuse it). The key must be non-empty and not yet added.
// The key general.alignment must be a uint32 power of two and also sets the
// alignment (as SetAlignment).
func (w *Writer) AddKV(key string, value any) error {
	if key == "" {
		return errors.New("gguf: empty metadata key")
	}
	if _, dup := w.keys[key]; dup {
		return fmt.Errorf("gguf: duplicate metadata key %q", key)
	}
	kv, err := normalizeKV(key, value)
	if err != nil {
		return err
	}
	if key == KeyAlignment {
		n, ok := kv.val.(uint32)
		if !ok || kv.array {
			return fmt.Errorf("gguf: %s must be a uint32, got %T", KeyAlignment, value)
		}
		if err := w.SetAlignment(n); err != nil {
			return err
		}
		if _, ok := w.keys[key]; ok { // SetAlignment added it
			return nil
		}
	}
	w.keys[key] = len(w.kvs)
	w.kvs = append(w.kvs, kv)
	return nil
}

func normalizeKV(key string, value any) (writerKV, error) {
	kv := writerKV{key: key}
	switch v := value.(type) {
	case uint8:
		kv.typ, kv.val = ValueUint8, v
	case int8:
		kv.typ, kv.val = ValueInt8, v
	case uint16:
		kv.typ, kv.val = ValueUint16, v
	case int16:
		kv.typ, kv.val = ValueInt16, v
	case uint32:
		kv.typ, kv.val = ValueUint32, v
	case int32:
		kv.typ, kv.val = ValueInt32, v
	case uint64:
		kv.typ, kv.val = ValueUint64, v
	case int64:
		kv.typ, kv.val = ValueInt64, v
	case float32:
		kv.typ, kv.val = ValueFloat32, v
	case float64:
		kv.typ, kv.val = ValueFloat64, v
	case bool:
		kv.typ, kv.val = ValueBool, v
	case string:
		kv.typ, kv.val = ValueString, v
	case []uint8:
		kv.typ, kv.val, kv.array = ValueUint8, clone(v), true
	case []int8:
		kv.typ, kv.val, kv.array = ValueInt8, clone(v), true
	case []uint16:
		kv.typ, kv.val, kv.array = ValueUint16, clone(v), true
	case []int16:
		kv.typ, kv.val, kv.array = ValueInt16, clone(v), true
	case []uint32:
		kv.typ, kv.val, kv.array = ValueUint32, clone(v), true
	case []int32:
		kv.typ, kv.val, kv.array = ValueInt32, clone(v), true
	case []uint64:
		kv.typ, kv.val, kv.array = ValueUint64, clone(v), true
	case []int64:
		kv.typ, kv.val, kv.array = ValueInt64, clone(v), true
	case []float32:
		kv.typ, kv.val, kv.array = ValueFloat32, clone(v), true
	case []float64:
		kv.typ, kv.val, kv.array = ValueFloat64, clone(v), true
	case []bool:
		kv.typ, kv.val, kv.array = ValueBool, clone(v), true
	case []string:
		kv.typ, kv.val, kv.array = ValueString, clone(v), true
	default:
		return kv, fmt.Errorf("gguf: key %q: unsupported value type %T (use a sized integer, float32/64, bool, string or a slice of those)", key, value)
	}
	return kv, nil
}

func clone[T any](s []T) []T {
	out := make([]T, len(s))
	copy(out, s)
	return out
}

// AddTensor adds a tensor whose data is already encoded in typ's layout.
// shape is in ggml order (ne0 first, the innermost dimension) with 1 to 4
// dimensions, each at least 1, and shape[0] a multiple of typ's block size;
// len(data) must be the tensor's exact byte size. The name must be 1 to 63
// bytes and unique. data is referenced, not copied, until WriteTo.
func (w *Writer) AddTensor(name string, typ TensorType, shape []uint64, data []byte) error {
	t, err := w.checkTensor(name, typ, shape)
	if err != nil {
		return err
	}
	if uint64(len(data)) != t.size {
		return fmt.Errorf("gguf: tensor %q: %d bytes of data, want %d for %s %v", name, len(data), t.size, typ, shape)
	}
	t.data = data
	w.addTensor(t)
	return nil
}

// AddTensorFunc adds a tensor whose data fill returns during WriteTo, so only
// one tensor's bytes need to be in memory at a time. The checks are those of
// AddTensor; the length of fill's result is checked when it is called. fill
// is called once per WriteTo, in tensor order.
func (w *Writer) AddTensorFunc(name string, typ TensorType, shape []uint64, fill func() ([]byte, error)) error {
	if fill == nil {
		return fmt.Errorf("gguf: tensor %q: nil fill function", name)
	}
	t, err := w.checkTensor(name, typ, shape)
	if err != nil {
		return err
	}
	t.fill = fill
	w.addTensor(t)
	return nil
}

func (w *Writer) checkTensor(name string, typ TensorType, shape []uint64) (writerTensor, error) {
	if name == "" {
		return writerTensor{}, errors.New("gguf: empty tensor name")
	}
	if len(name) > MaxTensorNameLen {
		return writerTensor{}, fmt.Errorf("gguf: tensor name %q is %d bytes, at most %d allowed", name, len(name), MaxTensorNameLen)
	}
	if _, dup := w.names[name]; dup {
		return writerTensor{}, fmt.Errorf("gguf: duplicate tensor name %q", name)
	}
	if len(shape) == 0 {
		return writerTensor{}, fmt.Errorf("gguf: tensor %q: no dimensions", name)
	}
	_, size, err := tensorBytes(typ, shape)
	if err != nil {
		return writerTensor{}, fmt.Errorf("gguf: tensor %q: %w", name, err)
	}
	return writerTensor{name: name, typ: typ, shape: clone(shape), size: size}, nil
}

func (w *Writer) addTensor(t writerTensor) {
	w.names[t.name] = struct{}{}
	w.tensors = append(w.tensors, t)
}

func pad(n, align uint64) uint64 {
	return (n + align - 1) / align * align
}

// countingWriter counts bytes and keeps the first error.
type countingWriter struct {
	bw  *bufio.Writer
	n   int64
	err error
	buf [8]byte
}

func (c *countingWriter) write(p []byte) {
	if c.err != nil {
		return
	}
	n, err := c.bw.Write(p)
	c.n += int64(n)
	c.err = err
}

func (c *countingWriter) u8(v uint8) { c.buf[0] = v; c.write(c.buf[:1]) }
func (c *countingWriter) u16(v uint16) {
	binary.LittleEndian.PutUint16(c.buf[:], v)
	c.write(c.buf[:2])
}
func (c *countingWriter) u32(v uint32) {
	binary.LittleEndian.PutUint32(c.buf[:], v)
	c.write(c.buf[:4])
}
func (c *countingWriter) u64(v uint64) {
	binary.LittleEndian.PutUint64(c.buf[:], v)
	c.write(c.buf[:8])
}
func (c *countingWriter) str(s string) {
	c.u64(uint64(len(s)))
	if c.err == nil {
		n, err := c.bw.WriteString(s)
		c.n += int64(n)
		c.err = err
	}
}
func (c *countingWriter) zeros(n uint64) {
	var z [64]byte
	for n > 0 && c.err == nil {
		k := min(n, uint64(len(z)))
		c.write(z[:k])
		n -= k
	}
}

func boolByte(b bool) uint8 {
	if b {
		return 1
	}
	return 0
}

func (c *countingWriter) scalar(v any) {
	switch v := v.(type) {
	case uint8:
		c.u8(v)
	case int8:
		c.u8(uint8(v))
	case uint16:
		c.u16(v)
	case int16:
		c.u16(uint16(v))
	case uint32:
		c.u32(v)
	case int32:
		c.u32(uint32(v))
	case uint64:
		c.u64(v)
	case int64:
		c.u64(uint64(v))
	case float32:
		c.u32(math.Float32bits(v))
	case float64:
		c.u64(math.Float64bits(v))
	case bool:
		c.u8(boolByte(v))
	case string:
		c.str(v)
	}
}

func writeSlice[T any](c *countingWriter, s []T) {
	c.u64(uint64(len(s)))
	for _, v := range s {
		c.scalar(v)
	}
}

func (c *countingWriter) kv(kv writerKV) {
	c.str(kv.key)
	if !kv.array {
		c.u32(uint32(kv.typ))
		c.scalar(kv.val)
		return
	}
	c.u32(uint32(ValueArray))
	c.u32(uint32(kv.typ))
	switch v := kv.val.(type) {
	case []uint8:
		c.u64(uint64(len(v)))
		c.write(v)
	case []int8:
		writeSlice(c, v)
	case []uint16:
		writeSlice(c, v)
	case []int16:
		writeSlice(c, v)
	case []uint32:
		writeSlice(c, v)
	case []int32:
		writeSlice(c, v)
	case []uint64:
		writeSlice(c, v)
	case []int64:
		writeSlice(c, v)
	case []float32:
		writeSlice(c, v)
	case []float64:
		writeSlice(c, v)
	case []bool:
		writeSlice(c, v)
	case []string:
		writeSlice(c, v)
	}
}

// WriteTo writes the file: header, KVs in insertion order, tensor infos in
// insertion order, zero padding to the alignment, then each tensor's data
// followed by zero padding to the alignment (as ggml's gguf_write_to_file
// does). It calls the fill functions of AddTensorFunc in order and fails if
// one fails or returns the wrong number of bytes. It returns the number of
// bytes written.
func (w *Writer) WriteTo(out io.Writer) (int64, error) {
	c := &countingWriter{bw: bufio.NewWriterSize(out, 1<<16)}
	align := uint64(w.alignment)

	c.write([]byte("GGUF"))
	c.u32(Version)
	c.u64(uint64(len(w.tensors)))
	c.u64(uint64(len(w.kvs)))
	for _, kv := range w.kvs {
		c.kv(kv)
	}
	var off uint64
	for _, t := range w.tensors {
		c.str(t.name)
		c.u32(uint32(len(t.shape)))
		for _, d := range t.shape {
			c.u64(d)
		}
		c.u32(uint32(t.typ))
		c.u64(off)
		off += pad(t.size, align)
	}
	c.zeros(pad(uint64(c.n), align) - uint64(c.n))
	for _, t := range w.tensors {
		data := t.data
		if t.fill != nil && c.err == nil {
			var err error
			data, err = t.fill()
			if err != nil {
				c.err = fmt.Errorf("gguf: tensor %q: fill: %w", t.name, err)
			} else if uint64(len(data)) != t.size {
				c.err = fmt.Errorf("gguf: tensor %q: fill returned %d bytes, want %d", t.name, len(data), t.size)
			}
		}
		c.write(data)
		c.zeros(pad(t.size, align) - t.size)
	}
	if c.err == nil {
		c.err = c.bw.Flush()
	}
	return c.n, c.err
}

// WriteFile writes the file to path atomically: to a temporary file in the
// same directory, synced, then renamed over path. On error path is left as
// it was.
func (w *Writer) WriteFile(path string) (err error) {
	dir, base := filepath.Split(path)
	if dir == "" {
		dir = "."
	}
	f, err := os.CreateTemp(dir, "."+base+".tmp*")
	if err != nil {
		return fmt.Errorf("gguf: %w", err)
	}
	tmp := f.Name()
	defer func() {
		if err != nil {
			_ = f.Close()
			_ = os.Remove(tmp)
		}
	}()
	if _, err = w.WriteTo(f); err != nil {
		return err
	}
	if err = f.Chmod(0o644); err != nil {
		return fmt.Errorf("gguf: %w", err)
	}
	if err = f.Sync(); err != nil {
		return fmt.Errorf("gguf: %w", err)
	}
	if err = f.Close(); err != nil {
		return fmt.Errorf("gguf: %w", err)
	}
	if err = os.Rename(tmp, path); err != nil {
		return fmt.Errorf("gguf: %w", err)
	}
	return nil
}
