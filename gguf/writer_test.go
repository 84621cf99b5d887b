package gguf

import (
	"bytes"
	"encoding/binary"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestWriterLayout(t *testing.T) {
	w := NewWriter()
	require.NoError(t, w.AddKV("general.architecture", "llama"))
	require.NoError(t, w.AddTensor("a", TypeF32, []uint64{3}, EncodeF32([]float32{1, 2, 3})))
	require.NoError(t, w.AddTensor("b", TypeF16, []uint64{2}, EncodeF16([]float32{1, 2})))
	var buf bytes.Buffer
	n, err := w.WriteTo(&buf)
	require.NoError(t, err)
	assert.Equal(t, int64(buf.Len()), n)
	b := buf.Bytes()
	assert.Equal(t, "GGUF", string(b[:4]))
	assert.Equal(t, uint32(3), binary.LittleEndian.Uint32(b[4:]))
	assert.Equal(t, uint64(2), binary.LittleEndian.Uint64(b[8:]))
	assert.Equal(t, uint64(1), binary.LittleEndian.Uint64(b[16:]))
	// header 24 + kv (8+20 key, 4 type, 8+5 value) = 69
	// tensor a: 8+1 name, 4 ndims, 8 dim, 4 type, 8 off = 33 -> 102
	// tensor b: 33 -> 135, padded to 160; a: 12 bytes padded to 32; b: 4 bytes padded to 32
	assert.Equal(t, 160+32+32, len(b))
	assert.Equal(t, EncodeF32([]float32{1, 2, 3}), b[160:172])
	assert.Equal(t, make([]byte, 20), b[172:192])
	assert.Equal(t, EncodeF16([]float32{1, 2}), b[192:196])
}

func TestWriterRejects(t *testing.T) {
	w := NewWriter()
	require.NoError(t, w.AddKV("k", uint32(1)))
	require.NoError(t, w.AddTensor("t", TypeF32, []uint64{1}, make([]byte, 4)))
	long := string(bytes.Repeat([]byte("x"), 64))
	tests := []struct {
		name string
		err  error
	}{
		{"empty key", w.AddKV("", uint32(1))},
		{"duplicate key", w.AddKV("k", uint32(2))},
		{"int", w.AddKV("i", 1)},
		{"map", w.AddKV("m", map[string]int{})},
		{"nested", w.AddKV("n", [][]string{{"a"}})},
		{"alignment type", w.AddKV(KeyAlignment, int32(64))},
		{"alignment pow2", w.AddKV(KeyAlignment, uint32(48))},
		{"SetAlignment 0", w.SetAlignment(0)},
		{"SetAlignment 3", w.SetAlignment(3)},
		{"empty name", w.AddTensor("", TypeF32, []uint64{1}, make([]byte, 4))},
		{"long name", w.AddTensor(long, TypeF32, []uint64{1}, make([]byte, 4))},
		{"dup name", w.AddTensor("t", TypeF32, []uint64{1}, make([]byte, 4))},
		{"no dims", w.AddTensor("x", TypeF32, nil, make([]byte, 4))},
		{"5 dims", w.AddTensor("x", TypeF32, []uint64{1, 1, 1, 1, 1}, make([]byte, 4))},
		{"zero dim", w.AddTensor("x", TypeF32, []uint64{1, 0}, nil)},
		{"block", w.AddTensor("x", TypeQ8_0, []uint64{16}, make([]byte, 17))},
		{"bad type", w.AddTensor("x", TensorType(4), []uint64{32}, make([]byte, 34))},
		{"size", w.AddTensor("x", TypeF32, []uint64{2}, make([]byte, 4))},
		{"overflow", w.AddTensor("x", TypeF32, []uint64{1 << 32, 1 << 32}, nil)},
		{"nil fill", w.AddTensorFunc("x", TypeF32, []uint64{2}, nil)},
	}
	for _, tc := range tests {
		assert.Error(t, tc.err, tc.name)
	}
	// nothing of the failed calls was added
	assert.Len(t, w.kvs, 1)
	assert.Len(t, w.tensors, 1)
	assert.Equal(t, uint32(DefaultAlignment), w.alignment)
}

func TestWriterFillChecked(t *testing.T) {
	w := NewWriter()
	require.NoError(t, w.AddTensorFunc("x", TypeF32, []uint64{2}, func() ([]byte, error) { return make([]byte, 4), nil }))
	_, err := w.WriteTo(&bytes.Buffer{})
	assert.ErrorContains(t, err, "fill returned 4 bytes, want 8")

	dir := t.TempDir()
	path := filepath.Join(dir, "m.gguf")
	require.NoError(t, os.WriteFile(path, []byte("old"), 0o644))
	assert.Error(t, w.WriteFile(path))
	got, err := os.ReadFile(path)
	require.NoError(t, err)
	assert.Equal(t, "old", string(got), "failed WriteFile must leave the target alone")
	entries, err := os.ReadDir(dir)
	require.NoError(t, err)
	assert.Len(t, entries, 1, "temporary file removed")
}
