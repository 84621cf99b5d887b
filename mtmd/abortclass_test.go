//go:build vlmtest

package mtmd_test

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/vlm-go/vlm/gguf"
	"github.com/vlm-go/vlm/internal/testmodel"
	"github.com/vlm-go/vlm/llama"
	"github.com/vlm-go/vlm/mtmd"
	"github.com/vlm-go/vlm/sampler"
)

// ggufEdit is one mutation of a GGUF file, applied by rewriteGGUF.
type ggufEdit struct {
	// KV, if set, sees every KV in file order and returns the KV to write
	// in its place (changed or not), or false to drop it.
	KV func(kv gguf.KV) (gguf.KV, bool)
	// AddKVs are written after the file's own KVs.
	AddKVs []gguf.KV
	// Tensor, if set, sees every tensor with its data in file order and
	// returns what to write in its place, or false to drop it. Returned
	// data of nil means zeros of the (new) type and shape.
	Tensor func(t gguf.TensorInfo, data []byte) (gguf.TensorInfo, []byte, bool)
	// AddTensors are written after the file's own tensors (nil data:
	// zeros).
	AddTensors []gguf.TensorInfo
	// Alignment, if set, is the written file's data alignment.
	Alignment uint32
	// Bytes, if set, patches the written file: for what gguf.Writer
	// rightly refuses to write (a bad alignment, a duplicate tensor name,
	// a truncated file).
	Bytes func(t *testing.T, b []byte) []byte
}

// rewriteGGUF reads the GGUF file src with gguf.Open, writes it again with
// gguf.Writer into a new file in dir with edit applied, and returns the new
// path. Without an edit the copy is byte-identical to src (checked by
// TestRewriteGGUFWithoutEditIsIdentical), so an error loading a rewritten
// file comes from its edit.
func rewriteGGUF(t *testing.T, src, dir, name string, edit ggufEdit) string {
	t.Helper()
	f, err := gguf.Open(src)
	require.NoError(t, err)
	r, err := os.Open(src)
	require.NoError(t, err)
	defer r.Close()

	w := gguf.NewWriter()
	if edit.Alignment != 0 {
		require.NoError(t, w.SetAlignment(edit.Alignment))
	}
	for _, kv := range f.KVs {
		if edit.KV != nil {
			var keep bool
			if kv, keep = edit.KV(kv); !keep {
				continue
			}
		}
		require.NoError(t, w.AddKV(kv.Key, kv.Value), "KV %s", kv.Key)
	}
	for _, kv := range edit.AddKVs {
		require.NoError(t, w.AddKV(kv.Key, kv.Value), "added KV %s", kv.Key)
	}
	add := func(ti gguf.TensorInfo, data []byte) {
		if data == nil {
			data = make([]byte, tensorSize(t, ti.Type, ti.Shape))
		}
		require.NoError(t, w.AddTensor(ti.Name, ti.Type, ti.Shape, data), "tensor %s", ti.Name)
	}
	for _, ti := range f.Tensors {
		data, err := f.ReadTensor(r, ti.Name)
		require.NoError(t, err)
		if edit.Tensor != nil {
			var keep bool
			if ti, data, keep = edit.Tensor(ti, data); !keep {
				continue
			}
		}
		add(ti, data)
	}
	for _, ti := range edit.AddTensors {
		add(ti, nil)
	}
	var buf bytes.Buffer
	_, err = w.WriteTo(&buf)
	require.NoError(t, err)
	out := buf.Bytes()
	if edit.Bytes != nil {
		out = edit.Bytes(t, out)
	}
	path := filepath.Join(dir, name+".gguf")
	require.NoError(t, os.WriteFile(path, out, 0o644))
	return path
}

// tensorSize is the byte size of a tensor of type typ and shape.
func tensorSize(t *testing.T, typ gguf.TensorType, shape []uint64) int {
	t.Helper()
	n, err := gguf.RowBytes(typ, shape[0])
	require.NoError(t, err)
	for _, d := range shape[1:] {
		n *= d
	}
	return int(n)
}

// ggufString is a string as GGUF stores it: u64 length, then the bytes.
func ggufString(s string) []byte {
	b := binary.LittleEndian.AppendUint64(nil, uint64(len(s)))
	return append(b, s...)
}

// replaceString replaces the one stored GGUF string old (a key or tensor
// name) with new, of the same length, failing if old is not there exactly
// once.
func replaceString(t *testing.T, b []byte, old, new string) []byte {
	t.Helper()
	require.Len(t, new, len(old))
	o := ggufString(old)
	require.Equal(t, 1, bytes.Count(b, o), "occurrences of %q", old)
	return bytes.Replace(b, o, ggufString(new), 1)
}

// editKey returns a KV hook that replaces the value of key by f's result.
func editKey(key string, f func(kv gguf.KV) any) func(gguf.KV) (gguf.KV, bool) {
	return func(kv gguf.KV) (gguf.KV, bool) {
		if kv.Key == key {
			kv.Value = f(kv)
		}
		return kv, true
	}
}

// dropKey returns a KV hook that leaves key out.
func dropKey(key string) func(gguf.KV) (gguf.KV, bool) {
	return func(kv gguf.KV) (gguf.KV, bool) { return kv, kv.Key != key }
}

// dropTensor returns a tensor hook that leaves the named tensor out.
func dropTensor(name string) func(gguf.TensorInfo, []byte) (gguf.TensorInfo, []byte, bool) {
	return func(ti gguf.TensorInfo, data []byte) (gguf.TensorInfo, []byte, bool) {
		return ti, data, ti.Name != name
	}
}

// editTensor returns a tensor hook that changes the named tensor's type
// and shape (its data becomes zeros).
func editTensor(name string, typ gguf.TensorType, shape func(old []uint64) []uint64) func(gguf.TensorInfo, []byte) (gguf.TensorInfo, []byte, bool) {
	return func(ti gguf.TensorInfo, data []byte) (gguf.TensorInfo, []byte, bool) {
		if ti.Name == name {
			ti.Type, ti.Shape, data = typ, shape(ti.Shape), nil
		}
		return ti, data, true
	}
}

// truncateLastTensor cuts the file inside the data of its last tensor.
func truncateLastTensor(t *testing.T, b []byte) []byte {
	t.Helper()
	f, err := gguf.Read(bytes.NewReader(b), int64(len(b)))
	require.NoError(t, err)
	last := f.Tensors[len(f.Tensors)-1]
	return b[:f.DataOffset+int64(last.Offset+last.Size/2)]
}

// abortClass is one class of malformed file from GGUF-NOTES.md: most make
// the pinned llama.cpp or mtmd abort, crash or read out of bounds; a few it
// refuses cleanly, and vlm reports them first (see unguarded).
type abortClass struct {
	name string
	// pair whose model (proj false) or projector (proj true) is mutated;
	// the other file of the pair is loaded unchanged.
	pair testmodel.ProjectorType
	proj bool
	edit ggufEdit
	// class is the gguf validation class the error matches, mention a
	// text the message must contain (the key or tensor at fault).
	class   error
	mention string
	// unguarded is what the pinned llama.cpp/mtmd does with the file when
	// loaded through the binding directly, without vlm's checks:
	// TestAbortClassesUnchecked runs it so in a child process.
	unguarded string
	// prompt, if set, is the text the unchecked run tokenizes.
	prompt string
}

// kvWidth returns a tensor hook that gives every layer's attn_k and attn_v
// weights n outputs (the tiny text model: 4 heads of 16), so that a file
// with another KV head count has the tensors llama.cpp expects for it.
func kvWidth(n uint64) func(gguf.TensorInfo, []byte) (gguf.TensorInfo, []byte, bool) {
	return func(ti gguf.TensorInfo, data []byte) (gguf.TensorInfo, []byte, bool) {
		if strings.HasSuffix(ti.Name, ".attn_k.weight") || strings.HasSuffix(ti.Name, ".attn_v.weight") {
			ti.Shape, data = []uint64{ti.Shape[0], n}, nil
		}
		return ti, data, true
	}
}

// textAbortClasses mutate the text model of a pair; llama.Load must return
// llama.ErrInvalidModel.
func textAbortClasses() []abortClass {
	mlp := testmodel.ProjectorMLP
	tokens := func(f func(toks []string) []string) func(gguf.KV) (gguf.KV, bool) {
		return editKey("tokenizer.ggml.tokens", func(kv gguf.KV) any {
			return f(append([]string(nil), kv.Value.([]string)...))
		})
	}
	f32 := func(v float32) func(gguf.KV) any { return func(gguf.KV) any { return v } }
	relabel := func(arch string) func(gguf.KV) (gguf.KV, bool) {
		return func(kv gguf.KV) (gguf.KV, bool) {
			if kv.Key == "general.architecture" {
				kv.Value = arch
			}
			kv.Key = strings.Replace(kv.Key, "llama.", arch+".", 1)
			return kv, true
		}
	}
	return []abortClass{{
		name: "dream without the q/k/v biases its graph adds", pair: mlp,
		unguarded: "SIGSEGV at context creation (observed, isolated)",
		edit:      ggufEdit{KV: relabel("dream")},
		class:     gguf.ErrMissingTensor, mention: "blk.0.attn_q.bias",
	}, {
		name: "baichuan of an unknown size", pair: mlp,
		unguarded: "GGML_ABORT in the baichuan graph at context creation (observed, isolated)",
		edit:      ggufEdit{KV: relabel("baichuan")},
		class:     gguf.ErrBadValue, mention: "32 (7B) and 40 (13B)",
	}, {
		name: "smallthinker without experts", pair: mlp,
		unguarded: "GGML_ASSERT(n_expert > 0) at load (observed, isolated)",
		edit:      ggufEdit{KV: relabel("smallthinker")},
		class:     gguf.ErrBadValue, mention: "mixture of experts",
	}, {
		name: "KV heads do not divide the heads", pair: mlp,
		unguarded: "GGML_ASSERT at context creation",
		edit: ggufEdit{AddKVs: []gguf.KV{{Key: "llama.attention.head_count_kv", Value: uint32(3)}}, KV: dropKey("llama.attention.head_count_kv"),
			Tensor: kvWidth(3 * 16)},
		class: gguf.ErrBadValue, mention: "llama.attention.head_count_kv",
	}, {
		name: "KV heads exceed the heads", pair: mlp,
		unguarded: "GGML_ASSERT at context creation",
		edit: ggufEdit{AddKVs: []gguf.KV{{Key: "llama.attention.head_count_kv", Value: uint32(8)}}, KV: dropKey("llama.attention.head_count_kv"),
			Tensor: kvWidth(8 * 16)},
		class: gguf.ErrBadValue, mention: "must divide the heads",
	}, {
		name: "NaN RMS norm epsilon", pair: mlp,
		unguarded: "GGML_ASSERT at the first decode",
		edit:      ggufEdit{KV: editKey("llama.attention.layer_norm_rms_epsilon", f32(float32(math.NaN())))},
		class:     gguf.ErrBadValue, mention: "llama.attention.layer_norm_rms_epsilon",
	}, {
		name: "negative RMS norm epsilon", pair: mlp,
		unguarded: "GGML_ASSERT at the first decode",
		edit:      ggufEdit{KV: editKey("llama.attention.layer_norm_rms_epsilon", f32(-1e-5))},
		class:     gguf.ErrBadValue, mention: "finite number >= 0",
	}, {
		name: "zero RoPE base", pair: mlp,
		unguarded: "loads; every logit NaN, <unk> forever",
		edit:      ggufEdit{AddKVs: []gguf.KV{{Key: "llama.rope.freq_base", Value: float32(0)}}, KV: dropKey("llama.rope.freq_base")},
		class:     gguf.ErrBadValue, mention: "llama.rope.freq_base",
	}, {
		// (an alignment below 32 is refused only when the data start is
		// misaligned: TestAlignment16WithAlignedDataRuns)
		name: "alignment not a power of two", pair: mlp,
		unguarded: "clean load error (gguf.cpp)",
		// Writer refuses alignment 48: written under a look-alike key, renamed.
		edit: ggufEdit{
			AddKVs: []gguf.KV{{Key: "general.alignmenX", Value: uint32(48)}},
			Bytes: func(t *testing.T, b []byte) []byte {
				return replaceString(t, b, "general.alignmenX", gguf.KeyAlignment)
			},
		},
		class: gguf.ErrBadAlignment, mention: `"general.alignment"`,
	}, {
		name: "alignment of type i32", pair: mlp,
		unguarded: "SIGABRT at load (gguf_get_val_u32 type assert)",
		edit: ggufEdit{
			AddKVs: []gguf.KV{{Key: "general.alignmenX", Value: int32(32)}},
			Bytes: func(t *testing.T, b []byte) []byte {
				return replaceString(t, b, "general.alignmenX", gguf.KeyAlignment)
			},
		},
		class: gguf.ErrBadAlignment, mention: "type i32, want u32",
	}, {
		name: "duplicate token strings", pair: mlp,
		unguarded: "SIGABRT at load (llama_vocab assert)",
		edit: ggufEdit{KV: tokens(func(toks []string) []string {
			toks[len(toks)-1] = toks[len(toks)-2]
			return toks
		})},
		class: gguf.ErrDuplicateToken, mention: "tokenizer.ggml.tokens",
	}, {
		name: "SPM vocabulary without byte tokens", pair: mlp,
		// llama_tokenize throws std::out_of_range on a character no token
		// covers: an abort for a C caller, an error through vlm's binding
		unguarded: "loads; tokenizing a character no token covers throws (a clean error through vlm's binding)",
		prompt:    "Grüße",
		edit: ggufEdit{KV: func(kv gguf.KV) (gguf.KV, bool) {
			switch kv.Key {
			case "tokenizer.ggml.tokens":
				toks := append([]string(nil), kv.Value.([]string)...)
				for i, s := range toks {
					if len(s) == 6 && strings.HasPrefix(s, "<0x") {
						toks[i] = "[byte " + s[3:5] + "]"
					}
				}
				kv.Value = toks
			case "tokenizer.ggml.token_type":
				types := append([]int32(nil), kv.Value.([]int32)...)
				for i, ty := range types {
					if ty == testmodel.TokenByte {
						types[i] = testmodel.TokenNormal
					}
				}
				kv.Value = types
			}
			return kv, true
		}},
		class: gguf.ErrByteTokens, mention: "256 of the 256 byte tokens",
	}, {
		name: "short scores", pair: mlp,
		unguarded: "silent out-of-bounds read at load",
		edit: ggufEdit{KV: editKey("tokenizer.ggml.scores", func(kv gguf.KV) any {
			s := kv.Value.([]float32)
			return s[:len(s)-1]
		})},
		class: gguf.ErrTokenArray, mention: "tokenizer.ggml.scores",
	}, {
		name: "short token types", pair: mlp,
		unguarded: "silent out-of-bounds read at load",
		edit: ggufEdit{KV: editKey("tokenizer.ggml.token_type", func(kv gguf.KV) any {
			s := kv.Value.([]int32)
			return s[:len(s)/2]
		})},
		class: gguf.ErrTokenArray, mention: "tokenizer.ggml.token_type",
	}, {
		name: "scores of type f64", pair: mlp,
		unguarded: "silent reinterpretation of the bytes as f32",
		edit: ggufEdit{KV: editKey("tokenizer.ggml.scores", func(kv gguf.KV) any {
			s := kv.Value.([]float32)
			out := make([]float64, len(s))
			for i, v := range s {
				out[i] = float64(v)
			}
			return out
		})},
		class: gguf.ErrTokenArray, mention: "arr[f64]",
	}, {
		name: "special token id of type i32", pair: mlp,
		unguarded: "clean load error",
		edit: ggufEdit{KV: editKey("tokenizer.ggml.bos_token_id", func(kv gguf.KV) any {
			return int32(kv.Value.(uint32))
		})},
		class: gguf.ErrKeyType, mention: "tokenizer.ggml.bos_token_id",
	}, {
		name: "block_count of type i32", pair: mlp,
		unguarded: "clean load error",
		edit: ggufEdit{KV: editKey("llama.block_count", func(kv gguf.KV) any {
			return int32(kv.Value.(uint32))
		})},
		class: gguf.ErrKeyType, mention: "llama.block_count",
	}, {
		name: "F16 norm weight", pair: mlp,
		unguarded: "loads, then SIGABRT in the first decode",
		// the CPU add/mul kernels abort on a non-F32 norm at decode time
		edit:  ggufEdit{Tensor: editTensor("output_norm.weight", gguf.TypeF16, func(s []uint64) []uint64 { return s })},
		class: gguf.ErrTensorShape, mention: "output_norm.weight",
	}, {
		name: "duplicate tensor names", pair: mlp,
		unguarded: "clean load error (gguf.cpp)",
		// Writer refuses duplicates: written under another name of the
		// same length, renamed.
		edit: ggufEdit{Bytes: func(t *testing.T, b []byte) []byte {
			return replaceString(t, b, "blk.0.attn_v.weight", "blk.0.attn_k.weight")
		}},
		class: gguf.ErrDuplicateTensor, mention: "blk.0.attn_k.weight",
	}, {
		name: "tensor data beyond the file end", pair: mlp,
		unguarded: "clean load error",
		edit:      ggufEdit{Bytes: truncateLastTensor},
		class:     gguf.ErrTruncated, mention: "beyond",
	}, {
		// not abort-class: llama.cpp fails cleanly ("wrong number of
		// tensors"); vlm reports it first
		name: "extra tensor", pair: mlp,
		unguarded: "clean load error (wrong number of tensors)",
		edit:      ggufEdit{AddTensors: []gguf.TensorInfo{{Name: "blk.0.extra.weight", Type: gguf.TypeF32, Shape: []uint64{64}}}},
		class:     gguf.ErrUnexpectedTensor, mention: "blk.0.extra.weight",
	}}
}

// projectorAbortClasses mutate the projector of a pair; mtmd.Load must
// return mtmd.ErrInvalidProjector.
func projectorAbortClasses() []abortClass {
	mlp, idefics3, gemma3 := testmodel.ProjectorMLP, testmodel.ProjectorIdefics3, testmodel.ProjectorGemma3
	return []abortClass{{
		name: "NaN vision norm epsilon", pair: mlp, proj: true,
		unguarded: "GGML_ASSERT when the encoder runs",
		edit: ggufEdit{KV: editKey("clip.vision.attention.layer_norm_epsilon", func(gguf.KV) any {
			return float32(math.NaN())
		})},
		class: gguf.ErrBadValue, mention: "clip.vision.attention.layer_norm_epsilon",
	}, {
		name: "zero image_std", pair: mlp, proj: true,
		unguarded: "loads; every embedding NaN",
		edit:      ggufEdit{KV: editKey("clip.vision.image_std", func(gguf.KV) any { return []float32{0.5, 0, 0.5} })},
		class:     gguf.ErrBadValue, mention: "clip.vision.image_std",
	}, {
		name: "feature_layer past the block count", pair: mlp, proj: true,
		unguarded: "SIGABRT (GGML_ASSERT) when the encoder runs",
		edit:      ggufEdit{AddKVs: []gguf.KV{{Key: "clip.vision.feature_layer", Value: []int32{1, 40}}}},
		class:     gguf.ErrBadValue, mention: "clip.vision.feature_layer",
	}, {
		name: "idefics3 preprocessing size 65536", pair: idefics3, proj: true,
		unguarded: "SIGSEGV or a hang of minutes in resize (int overflow)",
		edit:      ggufEdit{KV: editKey("clip.vision.preproc_image_size", func(gguf.KV) any { return uint32(65536) })},
		class:     gguf.ErrBadValue, mention: "clip.vision.preproc_image_size",
	}, {
		name: "huge image_grid_pinpoints", pair: mlp, proj: true,
		unguarded: "65,537 tiles for a 40×30 image: effectively a hang",
		edit:      ggufEdit{AddKVs: []gguf.KV{{Key: "clip.vision.image_grid_pinpoints", Value: []int32{8192, 8192}}}},
		class:     gguf.ErrBadValue, mention: "tiles",
	}, {
		name: "image_size of type f32", pair: mlp, proj: true,
		unguarded: "SIGABRT at load (clip.cpp getter assert)",
		edit: ggufEdit{KV: editKey("clip.vision.image_size", func(kv gguf.KV) any {
			return float32(kv.Value.(uint32))
		})},
		class: gguf.ErrKeyType, mention: "clip.vision.image_size",
	}, {
		name: "has_vision_encoder of type u32", pair: mlp, proj: true,
		unguarded: "SIGABRT at load",
		edit:      ggufEdit{KV: editKey("clip.has_vision_encoder", func(gguf.KV) any { return uint32(1) })},
		class:     gguf.ErrKeyType, mention: "clip.has_vision_encoder",
	}, {
		name: "image_mean missing", pair: mlp, proj: true,
		unguarded: "SIGABRT at load",
		edit:      ggufEdit{KV: dropKey("clip.vision.image_mean")},
		class:     gguf.ErrMissingKey, mention: "clip.vision.image_mean",
	}, {
		name: "idefics3 scale_factor missing", pair: idefics3, proj: true,
		unguarded: "SIGFPE (a division by zero) at the first image",
		edit:      ggufEdit{KV: dropKey("clip.vision.projector.scale_factor")},
		class:     gguf.ErrBadValue, mention: "clip.vision.projector.scale_factor",
	}, {
		name: "mlp mm.0.weight missing", pair: mlp, proj: true,
		unguarded: "SIGSEGV at the first encode (a null tensor; at load with warm-up)",
		edit:      ggufEdit{Tensor: dropTensor("mm.0.weight")},
		class:     gguf.ErrMissingTensor, mention: "mm.0.weight",
	}, {
		name: "idefics3 mm.model.fc.weight mis-shaped", pair: idefics3, proj: true,
		unguarded: "SIGABRT at the first encode (ggml shape assert)",
		edit: ggufEdit{Tensor: editTensor("mm.model.fc.weight", gguf.TypeF16, func(s []uint64) []uint64 {
			return []uint64{s[0] / 2, s[1]}
		})},
		class: gguf.ErrTensorShape, mention: "mm.model.fc.weight",
	}, {
		name: "gemma3 v.patch_embd.weight of type bf16", pair: gemma3, proj: true,
		unguarded: "SIGABRT (ggml assert) once the graph runs",
		edit: ggufEdit{Tensor: editTensor("v.patch_embd.weight", gguf.TypeBF16, func(s []uint64) []uint64 {
			return s
		})},
		class: gguf.ErrTensorShape, mention: "type bf16, want f32 or f16",
	}, {
		name: "use_gelu and use_silu both true", pair: mlp, proj: true,
		unguarded: "clean load error",
		edit: ggufEdit{
			KV:     editKey("clip.use_gelu", func(gguf.KV) any { return true }),
			AddKVs: []gguf.KV{{Key: "clip.use_silu", Value: true}},
		},
		class: gguf.ErrBadValue, mention: "clip.use_silu",
	}, {
		name: "projector duplicate tensor names", pair: mlp, proj: true,
		unguarded: "clean load error (gguf.cpp)",
		edit: ggufEdit{Bytes: func(t *testing.T, b []byte) []byte {
			return replaceString(t, b, "v.blk.0.attn_v.weight", "v.blk.0.attn_k.weight")
		}},
		class: gguf.ErrDuplicateTensor, mention: "v.blk.0.attn_k.weight",
	}, {
		name: "projector tensor data beyond the file end", pair: idefics3, proj: true,
		unguarded: "loads and encodes with garbage weights, silently",
		edit:      ggufEdit{Bytes: truncateLastTensor},
		class:     gguf.ErrTruncated, mention: "beyond",
	}}
}

// TestRewriteGGUFWithoutEditIsIdentical checks the mutation helper: a file
// read and written again unchanged is byte-identical, so the errors in
// TestAbortClassFilesFailCleanly come from the edits alone.
func TestRewriteGGUFWithoutEditIsIdentical(t *testing.T) {
	mpath, ppath := testmodel.TinyPair(t, testmodel.ProjectorIdefics3, gguf.TypeF16)
	for _, src := range []string{mpath, ppath} {
		out := rewriteGGUF(t, src, t.TempDir(), "copy", ggufEdit{})
		a, err := os.ReadFile(src)
		require.NoError(t, err)
		b, err := os.ReadFile(out)
		require.NoError(t, err)
		assert.True(t, bytes.Equal(a, b), "%s rewritten differs", filepath.Base(src))
	}
}

// greedyImageAnswer loads the pair, evaluates a prompt with one image and
// returns n tokens chosen by a greedy sampler; everything is closed again.
func greedyImageAnswer(t *testing.T, modelPath, projPath string, n int) []llama.Token {
	t.Helper()
	ctx := context.Background()
	m, err := llama.Load(ctx, modelPath, llama.LoadOptions{})
	require.NoError(t, err)
	defer m.Close()
	p, err := mtmd.Load(ctx, projPath, m, mtmd.Options{Threads: 2})
	require.NoError(t, err)
	defer p.Close()
	x, err := m.NewContext(llama.ContextOptions{ContextSize: 512, BatchSize: 128, Threads: 2})
	require.NoError(t, err)
	defer x.Close()
	img, err := mtmd.ImageFromGo(testImage(40, 30, 5))
	require.NoError(t, err)
	chunks, err := p.Tokenize(ctx, "What is in "+p.Marker()+"?", []*mtmd.Image{img}, mtmd.TokenizeOptions{AddSpecial: true, ParseSpecial: true})
	require.NoError(t, err)
	defer chunks.Close()
	pos, stats, err := p.Eval(ctx, x, chunks, mtmd.EvalOptions{Logits: true})
	require.NoError(t, err)
	require.Positive(t, stats.ImagesEncoded)
	s, err := sampler.New(m, sampler.Config{})
	require.NoError(t, err)
	defer s.Close()
	b, err := x.NewBatch(1)
	require.NoError(t, err)
	defer b.Close()
	var out []llama.Token
	for range n {
		tok, err := s.Sample(x, -1)
		require.NoError(t, err)
		out = append(out, tok)
		b.Clear()
		require.NoError(t, b.Add(tok, pos, true))
		require.NoError(t, x.Decode(ctx, b))
		pos++
	}
	return out
}

// TestAbortClassFilesFailCleanly writes one malformed file for each class of
// GGUF-NOTES.md on which the pinned llama.cpp or mtmd aborts or crashes the
// process, loads each through llama.Load / mtmd.Load in this one process,
// and checks for a typed error that names the problem. An unguarded class
// would kill the test binary. Afterwards the same process loads the good
// pair, encodes an image and generates the same tokens as before.
func TestAbortClassFilesFailCleanly(t *testing.T) {
	ctx := context.Background()
	goodModel := map[testmodel.ProjectorType]string{}
	goodProj := map[testmodel.ProjectorType]string{}
	for _, pt := range testmodel.ProjectorTypes() {
		goodModel[pt], goodProj[pt] = testmodel.TinyPair(t, pt, gguf.TypeF16)
	}
	before := greedyImageAnswer(t, goodModel[testmodel.ProjectorIdefics3], goodProj[testmodel.ProjectorIdefics3], 8)

	dir := t.TempDir()
	for i, c := range append(textAbortClasses(), projectorAbortClasses()...) {
		t.Run(c.name, func(t *testing.T) {
			name := fmt.Sprintf("bad-%02d", i)
			if !c.proj {
				path := rewriteGGUF(t, goodModel[c.pair], dir, name, c.edit)
				m, err := llama.Load(ctx, path, llama.LoadOptions{})
				if m != nil {
					m.Close()
				}
				require.Error(t, err, "llama.Load accepted the file")
				assert.ErrorIs(t, err, llama.ErrInvalidModel)
				assert.ErrorIs(t, err, c.class)
				assert.Contains(t, err.Error(), c.mention)
				t.Logf("%v (unguarded llama.cpp: %s)", err, c.unguarded)
				return
			}
			m, err := llama.Load(ctx, goodModel[c.pair], llama.LoadOptions{})
			require.NoError(t, err)
			defer m.Close()
			path := rewriteGGUF(t, goodProj[c.pair], dir, name, c.edit)
			p, err := mtmd.Load(ctx, path, m, mtmd.Options{Threads: 2})
			if p != nil {
				p.Close()
			}
			require.Error(t, err, "mtmd.Load accepted the file")
			assert.ErrorIs(t, err, mtmd.ErrInvalidProjector)
			assert.ErrorIs(t, err, c.class)
			assert.Contains(t, err.Error(), c.mention)
			t.Logf("%v (unguarded mtmd: %s)", err, c.unguarded)
		})
	}

	t.Run("special token id out of range is replaced by the default", func(t *testing.T) {
		// Not an abort class in the pinned llama.cpp: an id outside the
		// vocabulary is ignored with a warning and the SPM default (BOS 1)
		// stays, so the file loads and works.
		path := rewriteGGUF(t, goodModel[testmodel.ProjectorMLP], dir, "bos-out-of-range",
			ggufEdit{KV: editKey("tokenizer.ggml.bos_token_id", func(gguf.KV) any { return uint32(1 << 20) })})
		m, err := llama.Load(ctx, path, llama.LoadOptions{})
		require.NoError(t, err)
		defer m.Close()
		assert.Equal(t, llama.Token(1), m.Vocab().BOS())
		toks, err := m.Vocab().Tokenize("hello", true, false)
		require.NoError(t, err)
		assert.Equal(t, llama.Token(1), toks[0])
	})

	t.Run("gemma3 image larger than UBatchSize", func(t *testing.T) {
		// Non-causal image attention needs a whole image in one
		// micro-batch; llama.cpp aborts otherwise.
		m, err := llama.Load(ctx, goodModel[testmodel.ProjectorGemma3], llama.LoadOptions{})
		require.NoError(t, err)
		defer m.Close()
		p, err := mtmd.Load(ctx, goodProj[testmodel.ProjectorGemma3], m, mtmd.Options{Threads: 2})
		require.NoError(t, err)
		defer p.Close()
		img, err := mtmd.ImageFromGo(testImage(64, 64, 1))
		require.NoError(t, err)
		chunks, err := p.Tokenize(ctx, "x "+p.Marker(), []*mtmd.Image{img}, mtmd.TokenizeOptions{})
		require.NoError(t, err)
		defer chunks.Close()
		perImage := chunks.ImageTokens()
		require.Greater(t, perImage, 1)
		x, err := m.NewContext(llama.ContextOptions{ContextSize: 256, BatchSize: 64, UBatchSize: perImage - 1, Threads: 2})
		require.NoError(t, err)
		defer x.Close()
		_, _, err = p.Eval(ctx, x, chunks, mtmd.EvalOptions{Logits: true})
		assert.ErrorIs(t, err, mtmd.ErrUBatchTooSmall)
		assert.Contains(t, err.Error(), "UBatchSize")
	})

	t.Run("idefics3 text model without <global-img>", func(t *testing.T) {
		// mtmd would look the token up by text, get -1 and fail every
		// image; the projector load refuses the pair instead.
		path := rewriteGGUF(t, goodModel[testmodel.ProjectorIdefics3], dir, "no-global-img",
			ggufEdit{KV: editKey("tokenizer.ggml.tokens", func(kv gguf.KV) any {
				toks := append([]string(nil), kv.Value.([]string)...)
				for i, s := range toks {
					if s == "<global-img>" {
						toks[i] = "<global-imx>"
					}
				}
				return toks
			})})
		m, err := llama.Load(ctx, path, llama.LoadOptions{})
		require.NoError(t, err)
		defer m.Close()
		_, err = mtmd.Load(ctx, goodProj[testmodel.ProjectorIdefics3], m, mtmd.Options{Threads: 2})
		assert.ErrorIs(t, err, mtmd.ErrProjectorMismatch)
		assert.ErrorContains(t, err, `"<global-img>"`)
	})

	after := greedyImageAnswer(t, goodModel[testmodel.ProjectorIdefics3], goodProj[testmodel.ProjectorIdefics3], 8)
	assert.Equal(t, before, after, "the process answers as before the bad files")
}

// TestCorruptT5CharsmapIsAnError: a T5 tokenizer whose precompiled charsmap
// is corrupt is refused by llama.cpp at load (or, where the corruption only
// shows when tokenizing, makes llama_tokenize throw a C++ exception, which
// vlm catches as vlm.ErrNativeException); either way the error says why —
// llama.cpp's own cause, taken from its log — and the process goes on.
func TestCorruptT5CharsmapIsAnError(t *testing.T) {
	mp, _ := testmodel.TinyPair(t, testmodel.ProjectorMLP, gguf.TypeF16)
	charsmap := make([]uint8, 64)
	binary.LittleEndian.PutUint32(charsmap, 1<<20) // the xcda blob claims more bytes than there are
	path := rewriteGGUF(t, mp, t.TempDir(), "t5", ggufEdit{
		KV:     editKey("tokenizer.ggml.model", func(gguf.KV) any { return "t5" }),
		AddKVs: []gguf.KV{{Key: "tokenizer.ggml.precompiled_charsmap", Value: charsmap}},
	})
	m, err := llama.Load(context.Background(), path, llama.LoadOptions{VocabOnly: true})
	if err != nil {
		t.Logf("refused at load: %v", err)
		assert.Contains(t, err.Error(), "precompiled charsmap", "the error carries llama.cpp's cause")
		return
	}
	defer m.Close()
	for range 2 {
		_, err = m.Vocab().Tokenize("hello world", true, false)
		require.Error(t, err)
		t.Logf("%v", err)
	}
}

// TestNaNWeightsStopWithAnError: NaN weights load (llama.cpp does not read
// the values) and give NaN logits; sampling then fails with
// llama.ErrNonFinite instead of answering one token forever.
func TestNaNWeightsStopWithAnError(t *testing.T) {
	mp, pp := testmodel.TinyPair(t, testmodel.ProjectorMLP, gguf.TypeF16)
	path := rewriteGGUF(t, mp, t.TempDir(), "nan", ggufEdit{Tensor: func(ti gguf.TensorInfo, data []byte) (gguf.TensorInfo, []byte, bool) {
		if ti.Name == "output_norm.weight" { // F32
			nan := math.Float32bits(float32(math.NaN()))
			for i := 0; i+4 <= len(data); i += 4 {
				binary.LittleEndian.PutUint32(data[i:], nan)
			}
		}
		return ti, data, true
	}})
	ctx := context.Background()
	m, err := llama.Load(ctx, path, llama.LoadOptions{})
	require.NoError(t, err)
	defer m.Close()
	x, err := m.NewContext(llama.ContextOptions{ContextSize: 256, Threads: 1})
	require.NoError(t, err)
	defer x.Close()
	toks, err := m.Vocab().Tokenize("hello there", true, false)
	require.NoError(t, err)
	b, err := x.NewBatch(len(toks))
	require.NoError(t, err)
	defer b.Close()
	require.NoError(t, b.AddSequence(toks, 0, 0, true))
	require.NoError(t, x.Decode(ctx, b))
	s, err := sampler.New(m, sampler.Config{})
	require.NoError(t, err)
	defer s.Close()
	var last error
	gen := llama.Generate(ctx, x, s, llama.GenerateOptions{Pos: int32(len(toks)), MaxTokens: 5})
	for _, err := range gen.Tokens() {
		last = err
	}
	require.ErrorIs(t, last, llama.ErrNonFinite)
	t.Log(last)
	// The good pair still answers.
	assert.Len(t, greedyImageAnswer(t, mp, pp, 4), 4)
}

// uncheckedWantOf reads what an abort class's unguarded note claims as a
// checkable outcome; ok is false for claims a run cannot observe (a silent
// out-of-bounds read, garbage weights) or that take too long to show (a
// hang of minutes: VLM_TEST_SLOW_EVIDENCE=1 runs those to the child's
// 30 s limit).
func uncheckedWantOf(note string) (w uncheckedWant, ok bool) {
	switch {
	case strings.Contains(note, "hang") && os.Getenv("VLM_TEST_SLOW_EVIDENCE") != "":
		return wantCrash, true // a crash or the child's 30 s limit
	case strings.Contains(note, "silent"), strings.Contains(note, "hang"), strings.Contains(note, "garbage"):
		return 0, false
	case strings.Contains(note, "SIGSEGV"), strings.Contains(note, "SIGABRT"), strings.Contains(note, "SIGFPE"), strings.Contains(note, "GGML_ASSERT"), strings.Contains(note, "GGML_ABORT"):
		return wantCrash, true
	case strings.Contains(note, "NaN"):
		return wantNonFinite, true
	case strings.Contains(note, "clean"), strings.Contains(note, "throws"):
		return wantError, true
	}
	return 0, false
}

// TestAbortClassesUnchecked is the evidence of the abort classes: each
// malformed file of TestAbortClassFilesFailCleanly is run through the pinned
// llama.cpp and mtmd without vlm's checks, in a child process, and does
// what its note says — crashes, gives NaN, or fails cleanly — so every
// abort-class rule refuses a file that would otherwise kill the process or
// answer garbage.
func TestAbortClassesUnchecked(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a child process per file")
	}
	goodModel := map[testmodel.ProjectorType]string{}
	goodProj := map[testmodel.ProjectorType]string{}
	for _, pt := range testmodel.ProjectorTypes() {
		goodModel[pt], goodProj[pt] = testmodel.TinyPair(t, pt, gguf.TypeF16)
	}
	dir := t.TempDir()
	for i, c := range append(textAbortClasses(), projectorAbortClasses()...) {
		t.Run(c.name, func(t *testing.T) {
			want, ok := uncheckedWantOf(c.unguarded)
			if !ok {
				t.Skipf("not observable in a short run: %s", c.unguarded)
			}
			a := uncheckedArgs{Model: goodModel[c.pair], Prompt: c.prompt}
			if c.proj {
				a.Projector = rewriteGGUF(t, goodProj[c.pair], dir, fmt.Sprintf("bad-%02d", i), c.edit)
			} else {
				a.Model = rewriteGGUF(t, goodModel[c.pair], dir, fmt.Sprintf("bad-%02d", i), c.edit)
			}
			o := runUnchecked(t, a)
			t.Logf("unchecked: %v (noted: %s)", o, c.unguarded)
			switch want {
			case wantCrash:
				assert.True(t, o.Crashed || o.TimedOut, "want %v, got: %v", want, o)
			case wantNonFinite:
				assert.True(t, o.ran() && o.nonFinite(), "want %v, got: %v", want, o)
			case wantError:
				assert.True(t, o.Error != "" && !o.Crashed, "want %v, got: %v", want, o)
			}
		})
	}
}
