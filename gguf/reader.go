package gguf

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"slices"
)

// ReadOptions bounds what Read accepts beyond the file's own size. A zero
// field means its default. Independently of these limits, every count is
// checked against the bytes that remain in the file before memory is
// allocated for it.
type ReadOptions struct {
	MaxStringLen uint64 // longest string, keys included (default 64 MiB)
	MaxArrayLen  uint64 // most elements in one array (default 1<<24)
	MaxKVs       uint64 // most metadata pairs (default 1<<16)
	MaxTensors   uint64 // most tensors (default 1<<20)
}

// Default limits of ReadOptions.
const (
	DefaultMaxStringLen = 64 << 20
	DefaultMaxArrayLen  = 1 << 24
	DefaultMaxKVs       = 1 << 16
	DefaultMaxTensors   = 1 << 20
)

func (o ReadOptions) withDefaults() ReadOptions {
	if o.MaxStringLen == 0 {
		o.MaxStringLen = DefaultMaxStringLen
	}
	if o.MaxArrayLen == 0 {
		o.MaxArrayLen = DefaultMaxArrayLen
	}
	if o.MaxKVs == 0 {
		o.MaxKVs = DefaultMaxKVs
	}
	if o.MaxTensors == 0 {
		o.MaxTensors = DefaultMaxTensors
	}
	return o
}

// Open reads the metadata and tensor infos of the GGUF file at path with
// default limits. Tensor data is not read; the file is closed on return.
func Open(path string) (*File, error) {
	return OpenWithOptions(path, ReadOptions{})
}

// OpenWithOptions is Open with explicit limits.
func OpenWithOptions(path string, opts ReadOptions) (*File, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("gguf: %w", err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("gguf: %w", err)
	}
	if !st.Mode().IsRegular() {
		return nil, fmt.Errorf("gguf: %s is not a regular file", path)
	}
	return ReadWithOptions(f, st.Size(), opts)
}

// Read parses a GGUF file of size bytes from r with default limits: header,
// metadata and tensor infos, checking that all tensor data lies inside the
// file, aligned and without overlap. It reads only the metadata part of r.
func Read(r io.ReaderAt, size int64) (*File, error) {
	return ReadWithOptions(r, size, ReadOptions{})
}

// ReadWithOptions is Read with explicit limits.
func ReadWithOptions(r io.ReaderAt, size int64, opts ReadOptions) (*File, error) {
	if size < 0 {
		return nil, fmt.Errorf("gguf: negative size %d", size)
	}
	p := &parser{
		br:   bufio.NewReaderSize(io.NewSectionReader(r, 0, size), 1<<16),
		size: size,
		opts: opts.withDefaults(),
	}
	f, err := p.parse()
	if err != nil {
		return nil, err
	}
	return f, nil
}

type parser struct {
	br   *bufio.Reader
	pos  int64 // offset of the next byte
	size int64
	opts ReadOptions
	tmp  [8]byte
	key  string // current key or tensor name, for errors
}

func (p *parser) remaining() uint64 { return uint64(p.size - p.pos) }

func (p *parser) fail(sentinel error, format string, args ...any) *FormatError {
	return &FormatError{Offset: p.pos, Key: p.key, Msg: fmt.Sprintf(format, args...), Err: sentinel}
}

// read fills b or fails with ErrTruncated (or the reader's I/O error).
func (p *parser) read(b []byte) error {
	n, err := io.ReadFull(p.br, b)
	p.pos += int64(n)
	if err != nil {
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			return p.fail(ErrTruncated, "need %d bytes, file ends", len(b)-n)
		}
		return fmt.Errorf("gguf: reading at offset %d: %w", p.pos, err)
	}
	return nil
}

func (p *parser) u32() (uint32, error) {
	if err := p.read(p.tmp[:4]); err != nil {
		return 0, err
	}
	return binary.LittleEndian.Uint32(p.tmp[:4]), nil
}

func (p *parser) u64() (uint64, error) {
	if err := p.read(p.tmp[:8]); err != nil {
		return 0, err
	}
	return binary.LittleEndian.Uint64(p.tmp[:8]), nil
}

// need fails unless n items of at least unit bytes each fit in what remains.
func (p *parser) need(n, unit uint64, what string) error {
	if unit != 0 && n > p.remaining()/unit {
		return p.fail(ErrTruncated, "%s: %d × %d bytes do not fit in the %d bytes that remain (a truncated or corrupt file)", what, n, unit, p.remaining())
	}
	return nil
}

func (p *parser) str(what string) (string, error) {
	n, err := p.u64()
	if err != nil {
		return "", err
	}
	if err := p.need(n, 1, what); err != nil {
		return "", err
	}
	if n > p.opts.MaxStringLen {
		return "", p.fail(ErrLimit, "%s: length %d above the limit %d", what, n, p.opts.MaxStringLen)
	}
	if n == 0 {
		return "", nil
	}
	// Small strings straight from the buffer: one allocation each.
	if n <= uint64(p.br.Size()) {
		if b, err := p.br.Peek(int(n)); err == nil {
			s := string(b)
			_, _ = p.br.Discard(int(n))
			p.pos += int64(n)
			return s, nil
		}
	}
	b := make([]byte, n)
	if err := p.read(b); err != nil {
		return "", err
	}
	return string(b), nil
}

func (p *parser) parse() (*File, error) {
	var magic [4]byte
	if err := p.read(magic[:]); err != nil {
		return nil, err
	}
	if string(magic[:]) != "GGUF" {
		p.pos = 0
		return nil, p.fail(ErrNotGGUF, "magic %q", magic[:])
	}
	version, err := p.u32()
	if err != nil {
		return nil, err
	}
	switch {
	case version&0xffff == 0:
		return nil, p.fail(ErrUnsupportedVersion, "version %#x: a big-endian file?", version)
	case version < 2 || version > Version:
		return nil, p.fail(ErrUnsupportedVersion, "version %d, want 2 or 3", version)
	}
	nTensors, err := p.u64()
	if err != nil {
		return nil, err
	}
	nKV, err := p.u64()
	if err != nil {
		return nil, err
	}
	if int64(nTensors) < 0 {
		return nil, p.fail(ErrCorrupt, "negative tensor count %d", int64(nTensors))
	}
	if int64(nKV) < 0 {
		return nil, p.fail(ErrCorrupt, "negative KV count %d", int64(nKV))
	}
	// A KV takes at least 8 (key length) + 4 (type) + 1 bytes, a tensor
	// info 8 (name length) + 4 (dims) + 4 (type) + 8 (offset). A count the
	// file has no room for is garbage (checked before the limits, which
	// are for files that really are that large).
	if err := p.need(nKV, 13, "KV count"); err != nil {
		return nil, err
	}
	if err := p.need(nTensors, 24, "tensor count"); err != nil {
		return nil, err
	}
	if nKV > p.opts.MaxKVs {
		return nil, p.fail(ErrLimit, "%d KVs above the limit %d", nKV, p.opts.MaxKVs)
	}
	if nTensors > p.opts.MaxTensors {
		return nil, p.fail(ErrLimit, "%d tensors above the limit %d", nTensors, p.opts.MaxTensors)
	}

	f := &File{Version: version, Size: p.size, Alignment: DefaultAlignment}
	f.KVs = make([]KV, 0, nKV)
	f.keys = make(map[string]int, nKV)
	for i := uint64(0); i < nKV; i++ {
		p.key = ""
		kv, err := p.kv()
		if err != nil {
			return nil, err
		}
		if _, dup := f.keys[kv.Key]; dup {
			return nil, p.fail(ErrCorrupt, "duplicate key")
		}
		f.keys[kv.Key] = len(f.KVs)
		f.KVs = append(f.KVs, kv)
	}
	p.key = ""

	if i, ok := f.keys[KeyAlignment]; ok {
		kv := f.KVs[i]
		p.key = KeyAlignment
		a, isU32 := kv.Value.(uint32)
		switch {
		case !isU32:
			e := p.fail(ErrCorrupt, "type %s, want u32", kv.TypeName())
			e.kinds = []error{ErrBadAlignment, ErrWouldAbort}
			return nil, e
		case a == 0 || a&(a-1) != 0:
			e := p.fail(ErrCorrupt, "%d is not a power of two", a)
			e.kinds = []error{ErrBadAlignment}
			return nil, e
		}
		f.Alignment = a
		p.key = ""
	}

	f.Tensors = make([]TensorInfo, 0, nTensors)
	f.names = make(map[string]int, nTensors)
	for i := uint64(0); i < nTensors; i++ {
		p.key = ""
		t, err := p.tensorInfo()
		if err != nil {
			return nil, err
		}
		if _, dup := f.names[t.Name]; dup {
			e := p.fail(ErrCorrupt, "duplicate tensor name")
			e.kinds = []error{ErrDuplicateTensor}
			return nil, e
		}
		f.names[t.Name] = len(f.Tensors)
		f.Tensors = append(f.Tensors, t)
	}
	p.key = ""

	align := uint64(f.Alignment)
	f.DataOffset = int64(pad(uint64(p.pos), align)) // pos < 2^63, align <= 2^31
	if err := f.checkData(); err != nil {
		return nil, err
	}
	return f, nil
}

// checkData checks that every tensor's data is aligned, inside the file and
// not overlapping another's.
func (f *File) checkData() error {
	avail := uint64(0)
	if f.Size > f.DataOffset {
		avail = uint64(f.Size - f.DataOffset)
	}
	type span struct {
		start, end uint64
		i          int
	}
	spans := make([]span, 0, len(f.Tensors))
	for i, t := range f.Tensors {
		fail := func(sentinel error, format string, args ...any) error {
			return &FormatError{Offset: f.DataOffset, Key: t.Name, Msg: fmt.Sprintf(format, args...), Err: sentinel}
		}
		if t.Offset%uint64(f.Alignment) != 0 {
			return fail(ErrCorrupt, "data offset %d not a multiple of the alignment %d", t.Offset, f.Alignment)
		}
		if t.Offset > avail || t.Size > avail-t.Offset {
			return fail(ErrTruncated, "data [%d, +%d) beyond the %d data bytes in the file", t.Offset, t.Size, avail)
		}
		spans = append(spans, span{t.Offset, t.Offset + t.Size, i})
	}
	slices.SortFunc(spans, func(a, b span) int {
		switch {
		case a.start < b.start:
			return -1
		case a.start > b.start:
			return 1
		}
		return a.i - b.i
	})
	for k := 1; k < len(spans); k++ {
		if spans[k].start < spans[k-1].end {
			a, b := f.Tensors[spans[k-1].i], f.Tensors[spans[k].i]
			return &FormatError{Offset: f.DataOffset, Key: b.Name,
				Msg: fmt.Sprintf("data [%d, %d) overlaps tensor %q [%d, %d)", b.Offset, b.Offset+b.Size, a.Name, a.Offset, a.Offset+a.Size),
				Err: ErrCorrupt}
		}
	}
	return nil
}

func (p *parser) kv() (KV, error) {
	key, err := p.str("key")
	if err != nil {
		return KV{}, err
	}
	p.key = key
	if key == "" {
		return KV{}, p.fail(ErrCorrupt, "empty key")
	}
	t, err := p.u32()
	if err != nil {
		return KV{}, err
	}
	kv := KV{Key: key, Type: ValueType(t)}
	if kv.Type == ValueArray {
		et, err := p.u32()
		if err != nil {
			return KV{}, err
		}
		kv.ArrayType = ValueType(et)
		n, err := p.u64()
		if err != nil {
			return KV{}, err
		}
		kv.Value, err = p.array(kv.ArrayType, n)
		if err != nil {
			return KV{}, err
		}
		return kv, nil
	}
	kv.Value, err = p.scalar(kv.Type)
	return kv, err
}

func (p *parser) scalar(t ValueType) (any, error) {
	switch t {
	case ValueString:
		return p.str("string value")
	case ValueArray:
		return nil, p.fail(ErrCorrupt, "nested array")
	}
	sz := t.size()
	if sz == 0 {
		return nil, p.fail(ErrCorrupt, "unknown value type %d", uint32(t))
	}
	b := p.tmp[:sz]
	if err := p.read(b); err != nil {
		return nil, err
	}
	return decodeScalar(t, b), nil
}

func decodeScalar(t ValueType, b []byte) any {
	le := binary.LittleEndian
	switch t {
	case ValueUint8:
		return b[0]
	case ValueInt8:
		return int8(b[0])
	case ValueBool:
		return b[0] != 0
	case ValueUint16:
		return le.Uint16(b)
	case ValueInt16:
		return int16(le.Uint16(b))
	case ValueUint32:
		return le.Uint32(b)
	case ValueInt32:
		return int32(le.Uint32(b))
	case ValueFloat32:
		return math.Float32frombits(le.Uint32(b))
	case ValueUint64:
		return le.Uint64(b)
	case ValueInt64:
		return int64(le.Uint64(b))
	case ValueFloat64:
		return math.Float64frombits(le.Uint64(b))
	}
	return nil
}

func (p *parser) array(t ValueType, n uint64) (any, error) {
	if err := p.need(n, 1, "array"); err != nil {
		return nil, err
	}
	if n > p.opts.MaxArrayLen {
		return nil, p.fail(ErrLimit, "array of %d elements above the limit %d", n, p.opts.MaxArrayLen)
	}
	switch t {
	case ValueArray:
		return nil, p.fail(ErrCorrupt, "nested array")
	case ValueString:
		if err := p.need(n, 8, "string array"); err != nil {
			return nil, err
		}
		return p.strings(n)
	}
	sz := uint64(t.size())
	if sz == 0 {
		return nil, p.fail(ErrCorrupt, "unknown array element type %d", uint32(t))
	}
	if err := p.need(n, sz, "array"); err != nil {
		return nil, err
	}
	raw := make([]byte, n*sz)
	if err := p.read(raw); err != nil {
		return nil, err
	}
	le := binary.LittleEndian
	switch t {
	case ValueUint8:
		return raw, nil
	case ValueInt8:
		return convert(raw, 1, func(b []byte) int8 { return int8(b[0]) }), nil
	case ValueBool:
		return convert(raw, 1, func(b []byte) bool { return b[0] != 0 }), nil
	case ValueUint16:
		return convert(raw, 2, le.Uint16), nil
	case ValueInt16:
		return convert(raw, 2, func(b []byte) int16 { return int16(le.Uint16(b)) }), nil
	case ValueUint32:
		return convert(raw, 4, le.Uint32), nil
	case ValueInt32:
		return convert(raw, 4, func(b []byte) int32 { return int32(le.Uint32(b)) }), nil
	case ValueFloat32:
		return convert(raw, 4, func(b []byte) float32 { return math.Float32frombits(le.Uint32(b)) }), nil
	case ValueUint64:
		return convert(raw, 8, le.Uint64), nil
	case ValueInt64:
		return convert(raw, 8, func(b []byte) int64 { return int64(le.Uint64(b)) }), nil
	default: // ValueFloat64
		return convert(raw, 8, func(b []byte) float64 { return math.Float64frombits(le.Uint64(b)) }), nil
	}
}

func convert[T any](raw []byte, sz int, f func([]byte) T) []T {
	out := make([]T, len(raw)/sz)
	for i := range out {
		out[i] = f(raw[i*sz:])
	}
	return out
}

// strings reads n strings into one shared backing string (two allocations
// for the whole array instead of one per string). Memory grows with the
// bytes actually read, not with n: each string takes at least its 8-byte
// length in the file.
func (p *parser) strings(n uint64) ([]string, error) {
	arena := make([]byte, 0, min(n*8, 1<<16))
	ends := make([]int, 0, min(n, 1<<16))
	for i := uint64(0); i < n; i++ {
		l, err := p.u64()
		if err != nil {
			return nil, err
		}
		if l > p.opts.MaxStringLen {
			return nil, p.fail(ErrLimit, "array string %d: length %d above the limit %d", i, l, p.opts.MaxStringLen)
		}
		if err := p.need(l, 1, "array string"); err != nil {
			return nil, err
		}
		start := len(arena)
		arena = slices.Grow(arena, int(l))[:start+int(l)]
		if err := p.read(arena[start:]); err != nil {
			return nil, err
		}
		ends = append(ends, len(arena))
	}
	all := string(arena)
	out := make([]string, len(ends))
	start := 0
	for i, end := range ends {
		out[i] = all[start:end]
		start = end
	}
	return out, nil
}

func (p *parser) tensorInfo() (TensorInfo, error) {
	name, err := p.str("tensor name")
	if err != nil {
		return TensorInfo{}, err
	}
	p.key = name
	if len(name) > MaxTensorNameLen {
		return TensorInfo{}, p.fail(ErrCorrupt, "name of %d bytes, at most %d allowed", len(name), MaxTensorNameLen)
	}
	nd, err := p.u32()
	if err != nil {
		return TensorInfo{}, err
	}
	if nd > MaxDims {
		return TensorInfo{}, p.fail(ErrCorrupt, "%d dimensions, at most %d allowed", nd, MaxDims)
	}
	shape := make([]uint64, nd)
	for j := range shape {
		d, err := p.u64()
		if err != nil {
			return TensorInfo{}, err
		}
		if int64(d) < 0 {
			return TensorInfo{}, p.fail(ErrCorrupt, "dimension %d is negative (%d)", j, int64(d))
		}
		shape[j] = d
	}
	typ, err := p.u32()
	if err != nil {
		return TensorInfo{}, err
	}
	t := TensorInfo{Name: name, Type: TensorType(typ), Shape: shape}
	off, err := p.u64()
	if err != nil {
		return TensorInfo{}, err
	}
	t.Offset = off
	if !t.Type.Valid() {
		return TensorInfo{}, p.fail(ErrCorrupt, "unknown tensor type %d", typ)
	}
	_, size, err := tensorBytes(t.Type, shape)
	if err != nil {
		return TensorInfo{}, p.fail(ErrCorrupt, "%v", err)
	}
	t.Size = size
	return t, nil
}
