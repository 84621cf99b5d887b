package gguf

import (
	"bytes"
	"encoding/hex"
	"errors"
	"math"
	"os"
	"path/filepath"
	"runtime"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

var allValues = []struct {
	key string
	val any
	typ ValueType
	arr ValueType
}{
	{"u8", uint8(200), ValueUint8, 0},
	{"i8", int8(-100), ValueInt8, 0},
	{"u16", uint16(60000), ValueUint16, 0},
	{"i16", int16(-30000), ValueInt16, 0},
	{"u32", uint32(4000000000), ValueUint32, 0},
	{"i32", int32(-2000000000), ValueInt32, 0},
	{"u64", uint64(1) << 60, ValueUint64, 0},
	{"i64", int64(-1) << 60, ValueInt64, 0},
	{"f32", float32(3.25), ValueFloat32, 0},
	{"f64", math.Pi, ValueFloat64, 0},
	{"bool", true, ValueBool, 0},
	{"str", "héllo\x00world", ValueString, 0},
	{"empty str", "", ValueString, 0},
	{"a.u8", []uint8{1, 2, 255}, ValueArray, ValueUint8},
	{"a.i8", []int8{-1, 0, 127}, ValueArray, ValueInt8},
	{"a.u16", []uint16{1, 65535}, ValueArray, ValueUint16},
	{"a.i16", []int16{-32768, 5}, ValueArray, ValueInt16},
	{"a.u32", []uint32{7, 1 << 31}, ValueArray, ValueUint32},
	{"a.i32", []int32{-7, 1 << 30}, ValueArray, ValueInt32},
	{"a.u64", []uint64{1 << 63}, ValueArray, ValueUint64},
	{"a.i64", []int64{-(1 << 62)}, ValueArray, ValueInt64},
	{"a.f32", []float32{1.5, -2, float32(math.Inf(1))}, ValueArray, ValueFloat32},
	{"a.f64", []float64{1e300, -0.5}, ValueArray, ValueFloat64},
	{"a.bool", []bool{true, false, true}, ValueArray, ValueBool},
	{"a.str", []string{"a", "", "ccc"}, ValueArray, ValueString},
	{"a.empty", []string{}, ValueArray, ValueString},
}

var allTensorTypes = []TensorType{
	TypeF32, TypeF16, TypeQ4_0, TypeQ4_1, TypeQ5_0, TypeQ5_1, TypeQ8_0, TypeQ8_1,
	TypeQ2_K, TypeQ3_K, TypeQ4_K, TypeQ5_K, TypeQ6_K, TypeQ8_K, TypeIQ2_XXS,
	TypeIQ2_XS, TypeIQ3_XXS, TypeIQ1_S, TypeIQ4_NL, TypeIQ3_S, TypeIQ2_S,
	TypeIQ4_XS, TypeI8, TypeI16, TypeI32, TypeI64, TypeF64, TypeIQ1_M, TypeBF16,
	TypeTQ1_0, TypeTQ2_0, TypeMXFP4,
}

func roundTripWriter(t testing.TB) (*Writer, map[string][]byte) {
	w := NewWriter()
	for _, v := range allValues {
		require.NoError(t, w.AddKV(v.key, v.val), v.key)
	}
	data := map[string][]byte{}
	for i, typ := range allTensorTypes {
		bs := uint64(typ.BlockSize())
		shape := []uint64{bs * 2, 3}
		n, err := RowBytes(typ, bs*2*3)
		require.NoError(t, err)
		b := bytes.Repeat([]byte{byte(i + 1)}, int(n))
		name := "t." + typ.String()
		data[name] = b
		if i%2 == 0 {
			require.NoError(t, w.AddTensor(name, typ, shape, b))
		} else {
			require.NoError(t, w.AddTensorFunc(name, typ, shape, func() ([]byte, error) { return b, nil }))
		}
	}
	return w, data
}

func TestRoundTrip(t *testing.T) {
	w, data := roundTripWriter(t)
	b := mustBytes(t, w)
	f := mustRead(t, b)
	assert.Equal(t, uint32(3), f.Version)
	assert.Equal(t, uint32(32), f.Alignment)
	require.Len(t, f.KVs, len(allValues))
	for i, v := range allValues {
		kv := f.KVs[i]
		assert.Equal(t, v.key, kv.Key, "file order")
		assert.Equal(t, v.typ, kv.Type, v.key)
		assert.Equal(t, v.arr, kv.ArrayType, v.key)
		assert.Equal(t, v.val, kv.Value, v.key)
		got, ok := f.Get(v.key)
		assert.True(t, ok)
		assert.Equal(t, kv, got)
	}
	require.Len(t, f.Tensors, len(allTensorTypes))
	for i, typ := range allTensorTypes {
		ti := f.Tensors[i]
		assert.Equal(t, typ, ti.Type)
		assert.Equal(t, []uint64{uint64(typ.BlockSize()) * 2, 3}, ti.Shape)
		assert.Zero(t, ti.Offset%32)
		assert.Zero(t, (f.DataOffset+int64(ti.Offset))%32)
		got, err := f.ReadTensor(bytes.NewReader(b), ti.Name)
		require.NoError(t, err)
		assert.Equal(t, data[ti.Name], got, ti.Name)
	}
	// typed getters: exact types only
	u, ok := f.Uint32("u32")
	assert.True(t, ok)
	assert.Equal(t, uint32(4000000000), u)
	_, ok = f.Int32("u32")
	assert.False(t, ok)
	_, ok = f.Uint32("missing")
	assert.False(t, ok)
	s, ok := f.Strings("a.str")
	assert.True(t, ok)
	assert.Equal(t, []string{"a", "", "ccc"}, s)
	fs, ok := f.Float32s("a.f32")
	assert.True(t, ok)
	assert.Len(t, fs, 3)
	i8, _ := f.Int8("i8")
	assert.Equal(t, int8(-100), i8)
	bl, _ := f.Bool("bool")
	assert.True(t, bl)
	f64, _ := f.Float64("f64")
	assert.Equal(t, math.Pi, f64)
	assert.Equal(t, 3, f.KVs[len(f.KVs)-2].Len())
	assert.Equal(t, "arr[str]", f.KVs[len(f.KVs)-1].TypeName())
	_, ok = f.Tensor("nope")
	assert.False(t, ok)
	var total, params uint64
	for _, ti := range f.Tensors {
		total += ti.Size
		params += ti.Elements()
	}
	assert.Equal(t, total, f.TensorDataSize())
	assert.Equal(t, params, f.ParamCount())
}

func TestDeterministic(t *testing.T) {
	w1, _ := roundTripWriter(t)
	w2, _ := roundTripWriter(t)
	b1, b2 := mustBytes(t, w1), mustBytes(t, w2)
	assert.Equal(t, b1, b2)
	assert.Equal(t, b1, mustBytes(t, w1), "writing twice gives the same bytes")
	m1 := mustBytes(t, buildModel(t, defaultModelSpec()))
	m2 := mustBytes(t, buildModel(t, defaultModelSpec()))
	assert.Equal(t, m1, m2)
}

func TestAlignment(t *testing.T) {
	for _, align := range []uint32{1, 8, 32, 64, 4096} {
		w := NewWriter()
		require.NoError(t, w.AddKV("general.architecture", "x"))
		require.NoError(t, w.SetAlignment(align))
		require.NoError(t, w.AddTensor("a", TypeF32, []uint64{3}, EncodeF32([]float32{1, 2, 3})))
		require.NoError(t, w.AddTensor("b", TypeI8, []uint64{5}, []byte{1, 2, 3, 4, 5}))
		b := mustBytes(t, w)
		f := mustRead(t, b)
		assert.Equal(t, align, f.Alignment)
		a, ok := f.Uint32(KeyAlignment)
		assert.Equal(t, align != 32, ok, "general.alignment written only when not 32")
		if ok {
			assert.Equal(t, align, a)
		}
		assert.Zero(t, f.DataOffset%int64(align))
		assert.Equal(t, uint64(0), f.Tensors[0].Offset)
		assert.Equal(t, pad(12, uint64(align)), f.Tensors[1].Offset)
		assert.Equal(t, int64(len(b)), f.DataOffset+int64(pad(12, uint64(align))+pad(5, uint64(align))), "trailing padding like ggml")
		for i := f.DataOffset + 12; i < f.DataOffset+int64(f.Tensors[1].Offset); i++ {
			assert.Zero(t, b[i], "padding is zero")
		}
		require.NoError(t, ValidateLayout(f))
	}
	// AddKV of general.alignment sets the alignment
	w := NewWriter()
	require.NoError(t, w.AddKV(KeyAlignment, uint32(64)))
	require.NoError(t, w.AddTensor("a", TypeF32, []uint64{1}, make([]byte, 4)))
	f := mustRead(t, mustBytes(t, w))
	assert.Equal(t, uint32(64), f.Alignment)
	assert.Len(t, f.KVs, 1)
}

func TestF16(t *testing.T) {
	tests := []struct {
		in   float32
		bits uint16
	}{
		{0, 0x0000},
		{float32(math.Copysign(0, -1)), 0x8000},
		{1, 0x3c00},
		{-2, 0xc000},
		{65504, 0x7bff},
		{65520, 0x7c00}, // rounds up to Inf
		{65519, 0x7bff},
		{float32(math.Inf(1)), 0x7c00},
		{float32(math.Inf(-1)), 0xfc00},
		{float32(math.NaN()), 0x7e00},
		{1.0 / (1 << 24), 0x0001}, // smallest subnormal
		{1.0 / (1 << 25), 0x0000}, // tie: to even (0)
		{1.5 / (1 << 24), 0x0002}, // tie: to even (2)
		{2.5 / (1 << 24), 0x0002}, // tie: to even (2)
		{1.0 / (1 << 14), 0x0400}, // smallest normal
		{1 + 1.0/2048, 0x3c00},    // tie to even (down)
		{1 + 3.0/2048, 0x3c02},    // tie to even (up)
		{0.1, 0x2e66},
		{1e-10, 0},
	}
	for _, tc := range tests {
		assert.Equal(t, tc.bits, F32ToF16(tc.in), "%g", tc.in)
	}
	// decode is exact for every half; encode(decode(h)) == h for non-NaN
	for h := 0; h < 1<<16; h++ {
		f := F16ToF32(uint16(h))
		if math.IsNaN(float64(f)) {
			continue
		}
		require.Equal(t, uint16(h), F32ToF16(f), "%#04x", h)
	}
	vals := seq(1000, 7)
	got := DecodeF16(EncodeF16(vals))
	for i := range vals {
		assert.InDelta(t, vals[i], got[i], 1.0/2048, "relative error of half < 2^-11 for |x| <= 1")
	}
	assert.Equal(t, vals[:3], DecodeF32(EncodeF32(vals[:3])))
}

// q8Golden is quantize_row_q8_0_ref of q8Input from the pinned ggml,
// computed once with a C program.
const q8Golden = "cf3281746a5f54493e34291e1308fef3e8ddd2c8bdb2a79c92877a6f655a4f44392fc33224190e03f9eee3d8cdc2b7aca2978c81766b60554b40352a1f1409fef4e9ded300407f01ff02f5f4f30d0c0b0a0907060504030200fffefdfcfbfaf8f7f6f5f4f30d00000000000000000000000000000000000000000000000000000000000000000000"

func q8Input() []float32 {
	x := make([]float32, 128)
	for i := range x {
		x[i] = float32((i*7919)%2001-1000) / 37
	}
	for i := 96; i < 128; i++ {
		x[i] = 0
	}
	x[100] = float32(math.Copysign(0, -1))
	x[64], x[65], x[66], x[67] = 254, 1, -1, 3
	return x
}

func TestQ8_0(t *testing.T) {
	b, err := EncodeQ8_0(q8Input())
	require.NoError(t, err)
	assert.Equal(t, q8Golden, hex.EncodeToString(b), "bit-exact with ggml's quantize_row_q8_0_ref")

	vals := seq(32*64, 3)
	b, err = EncodeQ8_0(vals)
	require.NoError(t, err)
	assert.Len(t, b, 64*34)
	got, err := DecodeQ8_0(b)
	require.NoError(t, err)
	for blk := 0; blk < 64; blk++ {
		var amax float64
		for _, v := range vals[blk*32 : blk*32+32] {
			amax = math.Max(amax, math.Abs(float64(v)))
		}
		for j := blk * 32; j < blk*32+32; j++ {
			// half a quantum, plus the f16 rounding of the scale
			assert.InDelta(t, vals[j], got[j], amax/127/2+amax/1024)
		}
	}

	_, err = EncodeQ8_0(make([]float32, 33))
	assert.Error(t, err)
	_, err = EncodeQ8_0(append(make([]float32, 31), float32(math.NaN())))
	assert.Error(t, err)
	_, err = DecodeQ8_0(make([]byte, 35))
	assert.Error(t, err)
}

func TestQ8_0FileSize(t *testing.T) {
	const n = 32 * 1024
	q, err := EncodeQ8_0(seq(n, 1))
	require.NoError(t, err)
	w := NewWriter()
	require.NoError(t, w.AddTensor("w", TypeQ8_0, []uint64{256, n / 256}, q))
	b := mustBytes(t, w)
	f := mustRead(t, b)
	assert.Equal(t, uint64(n/32*34), f.Tensors[0].Size)
	assert.Equal(t, int64(len(b)), f.DataOffset+n/32*34, "34 bytes per 32 weights after the header")
	assert.Equal(t, uint64(n), f.ParamCount())
}

func TestTypeTraits(t *testing.T) {
	assert.Equal(t, 32, TypeQ8_0.BlockSize())
	assert.Equal(t, 34, TypeQ8_0.BlockBytes())
	assert.Equal(t, 1, TypeF32.BlockSize())
	assert.Equal(t, 4, TypeF32.BlockBytes())
	assert.Equal(t, 2, TypeF16.BlockBytes())
	assert.Equal(t, 256, TypeQ4_K.BlockSize())
	assert.Equal(t, 144, TypeQ4_K.BlockBytes())
	assert.Equal(t, "q8_0", TypeQ8_0.String())
	assert.Equal(t, "type(4)", TensorType(4).String())
	assert.False(t, TensorType(4).Valid())
	assert.False(t, TensorType(40).Valid())
	n, err := RowBytes(TypeQ8_0, 64)
	assert.NoError(t, err)
	assert.Equal(t, uint64(68), n)
	_, err = RowBytes(TypeQ8_0, 33)
	assert.Error(t, err)
	_, err = RowBytes(TensorType(5), 32)
	assert.Error(t, err)
	_, err = RowBytes(TypeF64, 1<<62)
	assert.Error(t, err, "overflow")
	assert.Equal(t, "u32", ValueUint32.String())
	assert.Equal(t, "type(13)", ValueType(13).String())
}

// small is a valid file with two tensors used by the malformed-input tests.
func small(t testing.TB) []byte {
	w := NewWriter()
	require.NoError(t, w.AddKV("general.architecture", "llama"))
	require.NoError(t, w.AddKV("a.str", []string{"x", "yy"}))
	require.NoError(t, w.AddKV("a.f32", []float32{1, 2}))
	require.NoError(t, w.AddTensor("a", TypeF32, []uint64{3}, EncodeF32([]float32{1, 2, 3})))
	require.NoError(t, w.AddTensor("b", TypeF16, []uint64{4, 2}, EncodeF16(seq(8, 2))))
	return mustBytes(t, w)
}

func TestTruncatedEverywhere(t *testing.T) {
	b := small(t)
	f := mustRead(t, b)
	last := f.Tensors[len(f.Tensors)-1]
	end := f.DataOffset + int64(last.Offset+last.Size)
	for n := 0; n < len(b); n++ {
		g, err := Read(bytes.NewReader(b[:n]), int64(n))
		if int64(n) >= end {
			// only the last tensor's padding is gone: still loadable
			assert.NoError(t, err, "cut at %d", n)
			continue
		}
		require.Error(t, err, "cut at %d", n)
		assert.Nil(t, g)
		assert.True(t, errors.Is(err, ErrTruncated), "cut at %d: %v", n, err)
		var fe *FormatError
		assert.True(t, errors.As(err, &fe))
	}
}

func TestMalformed(t *testing.T) {
	huge := uint64(1) << 60
	tests := []struct {
		name  string
		data  []byte
		want  error
		extra []error
	}{
		{"empty", nil, ErrTruncated, nil},
		{"bad magic", append([]byte("GGML"), small(t)[4:]...), ErrNotGGUF, nil},
		{"version 1", new(raw).header(1, 0, 0).Bytes(), ErrUnsupportedVersion, nil},
		{"version 4", new(raw).header(4, 0, 0).Bytes(), ErrUnsupportedVersion, nil},
		{"version 0", new(raw).header(0, 0, 0).Bytes(), ErrUnsupportedVersion, nil},
		{"big endian", new(raw).header(3<<24, 0, 0).Bytes(), ErrUnsupportedVersion, nil},
		{"huge tensor count", new(raw).header(3, 1<<19, 0).zeros(1000).Bytes(), ErrTruncated, nil},
		{"garbage tensor count", new(raw).header(3, huge, 0).zeros(1000).Bytes(), ErrTruncated, nil},
		{"huge KV count", new(raw).header(3, 0, 1<<15).zeros(1000).Bytes(), ErrTruncated, nil},
		{"garbage KV count", new(raw).header(3, 0, huge).zeros(1000).Bytes(), ErrTruncated, nil},
		{"negative tensor count", new(raw).header(3, 1<<63, 0).Bytes(), ErrCorrupt, nil},
		{"negative KV count", new(raw).header(3, 0, ^uint64(0)).Bytes(), ErrCorrupt, nil},
		{"garbage string length", new(raw).header(3, 0, 1).u64(1 << 40).zeros(1000).Bytes(), ErrTruncated, nil},
		{"long string", new(raw).header(3, 0, 1).u64(2000).zeros(1000).Bytes(), ErrTruncated, nil},
		{"huge array", new(raw).header(3, 0, 1).str("k").u32(uint32(ValueArray)).u32(uint32(ValueUint32)).u64(1 << 23).zeros(1000).Bytes(), ErrTruncated, nil},
		{"garbage array length", new(raw).header(3, 0, 1).str("k").u32(uint32(ValueArray)).u32(uint32(ValueUint8)).u64(huge).zeros(1000).Bytes(), ErrTruncated, nil},
		{"huge string array", new(raw).header(3, 0, 1).str("k").u32(uint32(ValueArray)).u32(uint32(ValueString)).u64(1 << 20).zeros(1000).Bytes(), ErrTruncated, nil},
		{"nested array", new(raw).header(3, 0, 1).str("k").u32(uint32(ValueArray)).u32(uint32(ValueArray)).u64(1).zeros(100).Bytes(), ErrCorrupt, nil},
		{"unknown value type", new(raw).header(3, 0, 1).str("k").u32(13).zeros(100).Bytes(), ErrCorrupt, nil},
		{"unknown array type", new(raw).header(3, 0, 1).str("k").u32(uint32(ValueArray)).u32(77).u64(1).zeros(100).Bytes(), ErrCorrupt, nil},
		{"empty key", new(raw).header(3, 0, 1).str("").u32(uint32(ValueUint8)).zeros(1).Bytes(), ErrCorrupt, nil},
		{"duplicate key", new(raw).header(3, 0, 2).kvU32("k", 1).kvU32("k", 2).Bytes(), ErrCorrupt, nil},
		{"alignment not pow2", new(raw).header(3, 0, 1).kvU32(KeyAlignment, 48).Bytes(), ErrCorrupt, []error{ErrBadAlignment}},
		{"alignment 0", new(raw).header(3, 0, 1).kvU32(KeyAlignment, 0).Bytes(), ErrCorrupt, []error{ErrBadAlignment}},
		{"alignment i32", new(raw).header(3, 0, 1).str(KeyAlignment).u32(uint32(ValueInt32)).u32(64).Bytes(), ErrCorrupt, []error{ErrBadAlignment, ErrWouldAbort}},
		{"5 dims", new(raw).header(3, 1, 0).tensor("t", TypeF32, 0, 1, 1, 1, 1, 1).padTo(32).zeros(32).Bytes(), ErrCorrupt, nil},
		{"zero dim", new(raw).header(3, 1, 0).tensor("t", TypeF32, 0, 4, 0).padTo(32).zeros(32).Bytes(), ErrCorrupt, nil},
		{"negative dim", new(raw).header(3, 1, 0).tensor("t", TypeF32, 0, 4, ^uint64(0)).padTo(32).zeros(32).Bytes(), ErrCorrupt, nil},
		{"element overflow", new(raw).header(3, 1, 0).tensor("t", TypeF32, 0, 1<<32, 1<<31).padTo(32).zeros(32).Bytes(), ErrCorrupt, nil},
		{"removed type 4", new(raw).header(3, 1, 0).tensor("t", TensorType(4), 0, 32).padTo(32).zeros(64).Bytes(), ErrCorrupt, nil},
		{"type 40", new(raw).header(3, 1, 0).tensor("t", TensorType(40), 0, 32).padTo(32).zeros(64).Bytes(), ErrCorrupt, nil},
		{"block size", new(raw).header(3, 1, 0).tensor("t", TypeQ8_0, 0, 16).padTo(32).zeros(64).Bytes(), ErrCorrupt, nil},
		{"name too long", new(raw).header(3, 1, 0).tensor(string(bytes.Repeat([]byte("n"), 64)), TypeF32, 0, 1).padTo(32).zeros(32).Bytes(), ErrCorrupt, nil},
		{"duplicate tensor", new(raw).header(3, 2, 0).tensor("t", TypeF32, 0, 1).tensor("t", TypeF32, 32, 1).padTo(32).zeros(64).Bytes(), ErrCorrupt, []error{ErrDuplicateTensor}},
		{"misaligned offset", new(raw).header(3, 1, 0).tensor("t", TypeF32, 4, 1).padTo(32).zeros(64).Bytes(), ErrCorrupt, nil},
		{"overlap", new(raw).header(3, 2, 0).tensor("a", TypeF32, 0, 16).tensor("b", TypeF32, 32, 16).padTo(32).zeros(128).Bytes(), ErrCorrupt, nil},
		{"same offset", new(raw).header(3, 2, 0).tensor("a", TypeF32, 0, 1).tensor("b", TypeF32, 0, 1).padTo(32).zeros(64).Bytes(), ErrCorrupt, nil},
		{"data past the end", new(raw).header(3, 1, 0).tensor("a", TypeF32, 0, 16).padTo(32).zeros(63).Bytes(), ErrTruncated, nil},
		{"offset past the end", new(raw).header(3, 1, 0).tensor("a", TypeF32, 1<<62, 1).padTo(32).zeros(64).Bytes(), ErrTruncated, nil},
		{"offset overflow", new(raw).header(3, 1, 0).tensor("a", TypeF32, ^uint64(0)-31, 16).padTo(32).zeros(64).Bytes(), ErrTruncated, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f, err := Read(bytes.NewReader(tc.data), int64(len(tc.data)))
			require.Error(t, err)
			assert.Nil(t, f)
			assert.ErrorIs(t, err, tc.want)
			for _, e := range tc.extra {
				assert.ErrorIs(t, err, e)
			}
			if !errors.Is(err, ErrWouldAbort) {
				assert.NotContains(t, tc.extra, ErrWouldAbort)
			}
			var fe *FormatError
			require.ErrorAs(t, err, &fe)
			assert.Equal(t, tc.want, fe.Err)
			assert.NotEmpty(t, fe.Error())
		})
	}
}

func TestReadOptions(t *testing.T) {
	b := small(t)
	_, err := ReadWithOptions(bytes.NewReader(b), int64(len(b)), ReadOptions{MaxStringLen: 3})
	assert.ErrorIs(t, err, ErrLimit)
	_, err = ReadWithOptions(bytes.NewReader(b), int64(len(b)), ReadOptions{MaxArrayLen: 1})
	assert.ErrorIs(t, err, ErrLimit)
	_, err = ReadWithOptions(bytes.NewReader(b), int64(len(b)), ReadOptions{MaxKVs: 2})
	assert.ErrorIs(t, err, ErrLimit)
	_, err = ReadWithOptions(bytes.NewReader(b), int64(len(b)), ReadOptions{MaxTensors: 1})
	assert.ErrorIs(t, err, ErrLimit)
	_, err = ReadWithOptions(bytes.NewReader(b), int64(len(b)), ReadOptions{MaxStringLen: 100, MaxArrayLen: 2, MaxKVs: 3, MaxTensors: 2})
	assert.NoError(t, err)
}

func TestOpenAndWriteFile(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "m.gguf")
	w := buildModel(t, defaultModelSpec())
	require.NoError(t, w.WriteFile(path))
	st, err := os.Stat(path)
	require.NoError(t, err)
	assert.Equal(t, os.FileMode(0o644), st.Mode().Perm())
	f, err := Open(path)
	require.NoError(t, err)
	assert.Equal(t, "llama", f.Architecture())
	assert.Contains(t, f.ChatTemplate(), "messages")
	assert.Equal(t, st.Size(), f.Size)
	entries, err := os.ReadDir(dir)
	require.NoError(t, err)
	assert.Len(t, entries, 1, "no temporary file left")
	b, err := os.ReadFile(path)
	require.NoError(t, err)
	assert.Equal(t, mustBytes(t, w), b)

	_, err = Open(filepath.Join(dir, "missing.gguf"))
	assert.ErrorIs(t, err, os.ErrNotExist)
	_, err = Open(dir)
	assert.Error(t, err)
}

// allocated returns the bytes allocated while fn runs.
func allocated(fn func()) uint64 {
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	fn()
	runtime.ReadMemStats(&after)
	return after.TotalAlloc - before.TotalAlloc
}

func TestHugeCountsDoNotAllocate(t *testing.T) {
	cases := [][]byte{
		new(raw).header(3, 1<<40, 0).zeros(1000).Bytes(),
		new(raw).header(3, 0, 1<<16).zeros(1000).Bytes(),
		new(raw).header(3, 0, 1).u64(1 << 40).zeros(1000).Bytes(),
		new(raw).header(3, 0, 1).str("k").u32(uint32(ValueArray)).u32(uint32(ValueString)).u64(1 << 24).zeros(1000).Bytes(),
		new(raw).header(3, 0, 1).str("k").u32(uint32(ValueArray)).u32(uint32(ValueUint64)).u64(1 << 24).zeros(1000).Bytes(),
	}
	for i, b := range cases {
		n := allocated(func() {
			_, err := Read(bytes.NewReader(b), int64(len(b)))
			assert.Error(t, err)
		})
		assert.Less(t, n, uint64(256<<10), "case %d allocated %d bytes", i, n)
	}
}

func TestLargeVocabulary(t *testing.T) {
	if testing.Short() {
		t.Skip("builds a 150k-token vocabulary")
	}
	toks := make([]string, 150000)
	for i := range toks {
		toks[i] = "tok" + string(rune('a'+i%26)) + string(rune(0x4e00+i%20000)) + hex.EncodeToString([]byte{byte(i >> 16), byte(i >> 8), byte(i)})
	}
	w := NewWriter()
	require.NoError(t, w.AddKV("tokenizer.ggml.tokens", toks))
	require.NoError(t, w.AddKV("tokenizer.ggml.scores", make([]float32, len(toks))))
	b := mustBytes(t, w)
	f := mustRead(t, b)
	got, ok := f.Strings("tokenizer.ggml.tokens")
	require.True(t, ok)
	assert.Equal(t, toks, got)
}

func BenchmarkReadVocabulary(b *testing.B) {
	toks := make([]string, 150000)
	for i := range toks {
		toks[i] = "Ġtoken" + hex.EncodeToString([]byte{byte(i >> 16), byte(i >> 8), byte(i)})
	}
	w := NewWriter()
	require.NoError(b, w.AddKV("tokenizer.ggml.tokens", toks))
	require.NoError(b, w.AddKV("tokenizer.ggml.scores", make([]float32, len(toks))))
	require.NoError(b, w.AddKV("tokenizer.ggml.token_type", make([]int32, len(toks))))
	data := mustBytes(b, w)
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Read(bytes.NewReader(data), int64(len(data))); err != nil {
			b.Fatal(err)
		}
	}
}

func TestTypedGetters(t *testing.T) {
	w, _ := roundTripWriter(t)
	f := mustRead(t, mustBytes(t, w))
	get := func(fn func(string) (any, bool), key string) any {
		v, ok := fn(key)
		require.True(t, ok, key)
		return v
	}
	tests := []struct {
		key string
		fn  func(string) (any, bool)
	}{
		{"u8", func(k string) (any, bool) { return f.Uint8(k) }},
		{"i8", func(k string) (any, bool) { return f.Int8(k) }},
		{"u16", func(k string) (any, bool) { return f.Uint16(k) }},
		{"i16", func(k string) (any, bool) { return f.Int16(k) }},
		{"u32", func(k string) (any, bool) { return f.Uint32(k) }},
		{"i32", func(k string) (any, bool) { return f.Int32(k) }},
		{"u64", func(k string) (any, bool) { return f.Uint64(k) }},
		{"i64", func(k string) (any, bool) { return f.Int64(k) }},
		{"f32", func(k string) (any, bool) { return f.Float32(k) }},
		{"f64", func(k string) (any, bool) { return f.Float64(k) }},
		{"bool", func(k string) (any, bool) { return f.Bool(k) }},
		{"str", func(k string) (any, bool) { return f.String(k) }},
		{"a.str", func(k string) (any, bool) { return f.Strings(k) }},
		{"a.f32", func(k string) (any, bool) { return f.Float32s(k) }},
		{"a.i32", func(k string) (any, bool) { return f.Int32s(k) }},
		{"a.u32", func(k string) (any, bool) { return f.Uint32s(k) }},
		{"a.u8", func(k string) (any, bool) { return f.Bytes(k) }},
	}
	for _, tc := range tests {
		kv, _ := f.Get(tc.key)
		assert.Equal(t, kv.Value, get(tc.fn, tc.key), tc.key)
		// every getter refuses a key of another type and a missing key
		other := "u8"
		if tc.key == "u8" {
			other = "i8"
		}
		_, ok := tc.fn(other)
		assert.False(t, ok, "%s getter on %s", tc.key, other)
		_, ok = tc.fn("missing")
		assert.False(t, ok)
	}
	ti := f.Tensors[0]
	assert.Equal(t, uint64(3), ti.Dim(1))
	assert.Equal(t, uint64(1), ti.Dim(3))
	_, err := f.ReadTensor(bytes.NewReader(nil), ti.Name)
	assert.Error(t, err, "short reader")
	_, err = f.ReadTensor(bytes.NewReader(nil), "missing")
	assert.Error(t, err)
}
