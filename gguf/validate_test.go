package gguf

import (
	"errors"
	"math"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func modelFile(t *testing.T, s modelSpec) *File {
	t.Helper()
	return mustRead(t, mustBytes(t, buildModel(t, s)))
}

func projFile(t *testing.T, s projSpec) *File {
	t.Helper()
	return mustRead(t, mustBytes(t, buildProjector(t, s)))
}

func TestValidateModelValid(t *testing.T) {
	f := modelFile(t, defaultModelSpec())
	require.NoError(t, ValidateModel(f))
	require.NoError(t, ValidateLayout(f))

	// Q8_0 and F16 weights, tied output, output.weight present, GQA off
	s := defaultModelSpec()
	s.nHeadKV = s.nHead
	w := buildModel(t, s)
	toks, _, _ := s.tokens()
	q, err := EncodeQ8_0(seq(32*len(toks), 9))
	require.NoError(t, err)
	require.NoError(t, w.AddTensor("output.weight", TypeQ8_0, []uint64{32, uint64(len(toks))}, q))
	require.NoError(t, ValidateModel(mustRead(t, mustBytes(t, w))))
}

// expectProblem asserts err holds a *ValidationError of kind with the given
// abort class.
func expectProblem(t *testing.T, err error, kind error, abort bool) {
	t.Helper()
	require.Error(t, err)
	assert.ErrorIs(t, err, ErrInvalid)
	assert.ErrorIs(t, err, kind)
	var ve *ValidationError
	require.ErrorAs(t, err, &ve)
	found := false
	for _, e := range flatten(err) {
		var v *ValidationError
		if errors.As(e, &v) && v.Kind == kind && v.Abort == abort {
			found = true
		}
	}
	assert.True(t, found, "no %v problem with abort=%v in: %v", kind, abort, err)
	if abort {
		assert.ErrorIs(t, err, ErrWouldAbort)
	}
}

func flatten(err error) []error {
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		return j.Unwrap()
	}
	return []error{err}
}

func TestValidateModelProblems(t *testing.T) {
	tests := []struct {
		name  string
		edit  func(*modelSpec)
		kind  error
		abort bool
	}{
		{"duplicate token", func(s *modelSpec) { s.extraTokens = append(s.extraTokens, "b") }, ErrDuplicateToken, true},
		{"duplicate via empty token", func(s *modelSpec) { s.extraTokens = append(s.extraTokens, "", "[EMPTY_7]") }, ErrDuplicateToken, true},
		{"scores short", func(s *modelSpec) { s.override = map[string]any{"tokenizer.ggml.scores": []float32{1, 2}} }, ErrTokenArray, true},
		{"scores type", func(s *modelSpec) {
			s.override = map[string]any{"tokenizer.ggml.scores": make([]float64, len(s.extraTokens)+256)}
		}, ErrTokenArray, true},
		{"token_type long", func(s *modelSpec) {
			s.override = map[string]any{"tokenizer.ggml.token_type": make([]int32, len(s.extraTokens)+300)}
		}, ErrTokenArray, false},
		{"token_type scalar", func(s *modelSpec) { s.override = map[string]any{"tokenizer.ggml.token_type": int32(1)} }, ErrTokenArray, true},
		{"bos id type", func(s *modelSpec) { s.override = map[string]any{"tokenizer.ggml.bos_token_id": int32(1)} }, ErrKeyType, false},

		{"context_length i32", func(s *modelSpec) { s.override = map[string]any{"llama.context_length": int32(256)} }, ErrKeyType, false},
		{"rms eps f64", func(s *modelSpec) {
			s.override = map[string]any{"llama.attention.layer_norm_rms_epsilon": float64(1e-5)}
		}, ErrKeyType, false},
		{"head_count f32 array", func(s *modelSpec) {
			s.override = map[string]any{"llama.attention.head_count": []float32{4, 4}}
		}, ErrKeyType, true},
		{"head_count array length", func(s *modelSpec) {
			s.override = map[string]any{"llama.attention.head_count": []uint32{4, 4, 4}}
		}, ErrBadValue, false},
		{"missing block_count", func(s *modelSpec) { s.skip = map[string]bool{"llama.block_count": true} }, ErrMissingKey, false},
		{"missing rms eps", func(s *modelSpec) {
			s.skip = map[string]bool{"llama.attention.layer_norm_rms_epsilon": true}
		}, ErrMissingKey, false},
		{"missing tokens", func(s *modelSpec) { s.skip = map[string]bool{"tokenizer.ggml.tokens": true} }, ErrMissingKey, false},
		{"tokens not strings", func(s *modelSpec) {
			s.override = map[string]any{"tokenizer.ggml.tokens": make([]int32, len(s.extraTokens)+256)}
		}, ErrKeyType, true},
		{"rope dims", func(s *modelSpec) { s.override = map[string]any{"llama.rope.dimension_count": uint32(6)} }, ErrBadValue, false},
		{"unknown tokenizer", func(s *modelSpec) { s.override = map[string]any{"tokenizer.ggml.model": "sentencepiece"} }, ErrBadValue, false},
		{"gpt2 without merges", func(s *modelSpec) { s.override = map[string]any{"tokenizer.ggml.model": "gpt2"} }, ErrMissingKey, false},
		{"missing tensor", func(s *modelSpec) { s.skip = map[string]bool{"blk.1.ffn_up.weight": true} }, ErrMissingTensor, false},
		{"missing architecture", func(s *modelSpec) { s.skip = map[string]bool{"general.architecture": true} }, ErrMissingKey, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := defaultModelSpec()
			tc.edit(&s)
			expectProblem(t, ValidateModel(modelFile(t, s)), tc.kind, tc.abort)
		})
	}
}

func TestValidateModelFileEdits(t *testing.T) {
	base := func() *File { return modelFile(t, defaultModelSpec()) }
	replaceKV := func(f *File, key string, kv KV) {
		for i := range f.KVs {
			if f.KVs[i].Key == key {
				f.KVs[i] = kv
			}
		}
	}
	tests := []struct {
		name  string
		edit  func(*File)
		kind  error
		abort bool
	}{
		{"missing byte tokens", func(f *File) {
			toks, _ := f.Strings("tokenizer.ggml.tokens")
			toks[len(toks)-1] = "<0xff>" // lower case: not what byte_to_token looks up
		}, ErrByteTokens, false},
		{"byte type on a normal token", func(f *File) {
			types, _ := f.Int32s("tokenizer.ggml.token_type")
			types[5] = tokenTypeByte // "▁a"
		}, ErrTokenArray, false},
		{"byte type on a short token", func(f *File) {
			types, _ := f.Int32s("tokenizer.ggml.token_type")
			types[6] = tokenTypeByte // "b"
		}, ErrTokenArray, true},
		{"alignment i32", func(f *File) {
			f.KVs = append(f.KVs, KV{Key: KeyAlignment, Type: ValueInt32, Value: int32(32)})
		}, ErrBadAlignment, true},
		{"alignment not pow2", func(f *File) {
			f.KVs = append(f.KVs, KV{Key: KeyAlignment, Type: ValueUint32, Value: uint32(24)})
		}, ErrBadAlignment, false},
		{"duplicate tensor", func(f *File) { f.Tensors[1].Name = f.Tensors[0].Name }, ErrDuplicateTensor, false},
		{"duplicate key", func(f *File) { f.KVs = append(f.KVs, f.KVs[0]) }, ErrDuplicateKey, false},
		{"layout", func(f *File) { f.Tensors[1].Offset += 32 }, ErrLayout, false},
		{"unknown rope scaling", func(f *File) {
			f.KVs = append(f.KVs, KV{Key: "llama.rope.scaling.type", Type: ValueString, Value: "ntk"})
		}, ErrBadValue, true},
		{"experts used > count", func(f *File) {
			f.KVs = append(f.KVs, KV{Key: "llama.expert_count", Type: ValueUint32, Value: uint32(2)},
				KV{Key: "llama.expert_used_count", Type: ValueUint32, Value: uint32(3)})
		}, ErrBadValue, true},
		{"norm in f16", func(f *File) {
			for i := range f.Tensors {
				if f.Tensors[i].Name == "output_norm.weight" {
					f.Tensors[i].Type = TypeF16
				}
			}
		}, ErrTensorShape, true},
		{"wrong shape", func(f *File) {
			for i := range f.Tensors {
				if f.Tensors[i].Name == "blk.0.attn_k.weight" {
					f.Tensors[i].Shape = []uint64{32, 32}
				}
			}
		}, ErrTensorShape, false},
		{"extra tensor", func(f *File) {
			f.Tensors = append(f.Tensors, TensorInfo{Name: "extra", Type: TypeF32, Shape: []uint64{1}, Offset: 1 << 20})
		}, ErrUnexpectedTensor, false},
		{"add_bos without bos", func(f *File) {
			replaceKV(f, "tokenizer.ggml.model", KV{Key: "tokenizer.ggml.model", Type: ValueString, Value: "t5"})
			f.KVs = append(f.KVs[:0:0], f.KVs...)
			var kvs []KV
			for _, kv := range f.KVs {
				if kv.Key != "tokenizer.ggml.bos_token_id" {
					kvs = append(kvs, kv)
				}
			}
			f.KVs = kvs
			f.keys = nil
		}, ErrSpecialToken, true},
		{"default id out of range", func(f *File) {
			var kvs []KV
			for _, kv := range f.KVs {
				switch kv.Key {
				case "tokenizer.ggml.bos_token_id", "tokenizer.ggml.eos_token_id", "tokenizer.ggml.scores", "tokenizer.ggml.token_type":
				case "tokenizer.ggml.model":
					kvs = append(kvs, KV{Key: kv.Key, Type: ValueString, Value: "gpt2"})
				case "tokenizer.ggml.tokens":
					kvs = append(kvs, KV{Key: kv.Key, Type: ValueArray, ArrayType: ValueString, Value: []string{"a", "b", "c"}})
				default:
					kvs = append(kvs, kv)
				}
			}
			f.KVs = append(kvs, KV{Key: "tokenizer.ggml.merges", Type: ValueArray, ArrayType: ValueString, Value: []string{}})
		}, ErrSpecialToken, true},
		{"explicit id and fallback out of range", func(f *File) {
			var kvs []KV
			for _, kv := range f.KVs {
				switch kv.Key {
				case "tokenizer.ggml.scores", "tokenizer.ggml.token_type", "tokenizer.ggml.unknown_token_id", "tokenizer.ggml.padding_token_id":
				case "tokenizer.ggml.bos_token_id", "tokenizer.ggml.eos_token_id":
					kvs = append(kvs, KV{Key: kv.Key, Type: ValueUint32, Value: uint32(100)})
				case "tokenizer.ggml.tokens":
					kvs = append(kvs, KV{Key: kv.Key, Type: ValueArray, ArrayType: ValueString, Value: []string{"a", "b"}})
				default:
					kvs = append(kvs, kv)
				}
			}
			f.KVs = kvs // llama (SPM) defaults bos 1 (in range), eos 2 (not)
		}, ErrSpecialToken, true},
		{"bert tokenizer with byte tokens", func(f *File) {
			replaceKV(f, "tokenizer.ggml.model", KV{Key: "tokenizer.ggml.model", Type: ValueString, Value: "bert"})
		}, ErrTokenArray, true},
		{"gpt2 tokenizer with byte tokens", func(f *File) {
			replaceKV(f, "tokenizer.ggml.model", KV{Key: "tokenizer.ggml.model", Type: ValueString, Value: "gpt2"})
			f.KVs = append(f.KVs, KV{Key: "tokenizer.ggml.merges", Type: ValueArray, ArrayType: ValueString, Value: []string{}})
		}, ErrTokenArray, false},
		{"rwkv vocabulary without a newline", func(f *File) {
			replaceKV(f, "tokenizer.ggml.model", KV{Key: "tokenizer.ggml.model", Type: ValueString, Value: "rwkv"})
		}, ErrBadValue, true},
		{"KV heads do not divide the heads", func(f *File) {
			replaceKV(f, "llama.attention.head_count_kv", KV{Key: "llama.attention.head_count_kv", Type: ValueUint32, Value: uint32(3)})
		}, ErrBadValue, true},
		{"NaN norm epsilon", func(f *File) {
			replaceKV(f, "llama.attention.layer_norm_rms_epsilon", KV{Key: "llama.attention.layer_norm_rms_epsilon", Type: ValueFloat32, Value: float32(math.NaN())})
		}, ErrBadValue, true},
		{"alignment 16, data at 16 mod 32", func(f *File) {
			f.KVs = append(f.KVs, KV{Key: KeyAlignment, Type: ValueUint32, Value: uint32(16)})
			f.DataOffset += 16
		}, ErrBadAlignment, true},
		{"mixture of experts without experts", func(f *File) {
			var kvs []KV
			for _, kv := range f.KVs {
				if kv.Key == "general.architecture" {
					kv.Value = "smallthinker"
				}
				kv.Key = strings.Replace(kv.Key, "llama.", "smallthinker.", 1)
				kvs = append(kvs, kv)
			}
			f.KVs = kvs
		}, ErrBadValue, true},
		{"clip file", func(f *File) {
			replaceKV(f, "general.architecture", KV{Key: "general.architecture", Type: ValueString, Value: "clip"})
		}, ErrBadValue, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := base()
			tc.edit(f)
			f.keys, f.names = nil, nil // edited by hand: use linear lookups
			expectProblem(t, ValidateModel(f), tc.kind, tc.abort)
		})
	}
}

func TestValidateModelSpecialFallback(t *testing.T) {
	s := defaultModelSpec()
	n := uint32(len(s.extraTokens) + 256)
	// llama.cpp warns and keeps its default (pad: none, eos: 2)
	s.override = map[string]any{"tokenizer.ggml.padding_token_id": n, "tokenizer.ggml.eos_token_id": n + 5}
	assert.NoError(t, ValidateModel(modelFile(t, s)))
}

func TestValidateModelOtherArch(t *testing.T) {
	// a non-llama architecture: keys checked, tensors not
	w := NewWriter()
	for _, kv := range []struct {
		k string
		v any
	}{
		{"general.architecture", "qwen2"},
		{"qwen2.context_length", uint32(1024)},
		{"qwen2.embedding_length", uint32(64)},
		{"qwen2.block_count", uint32(2)},
		{"qwen2.feed_forward_length", []int32{128, 128}},
		{"qwen2.attention.head_count", uint32(4)},
		{"tokenizer.ggml.model", "gpt2"},
		{"tokenizer.ggml.tokens", []string{"a", "b", "Ġ", "Ċ", "<|im_end|>"}},
		{"tokenizer.ggml.merges", []string{"a b"}},
		{"tokenizer.ggml.token_type", []int32{1, 1, 1, 1, 3}},
		{"tokenizer.ggml.bos_token_id", uint32(4)},
		{"tokenizer.ggml.eos_token_id", uint32(4)},
	} {
		require.NoError(t, w.AddKV(kv.k, kv.v))
	}
	f32Tensor(t, w, "whatever", 4)
	require.NoError(t, ValidateModel(mustRead(t, mustBytes(t, w))))
}

func TestValidateModelQwen2VLSections(t *testing.T) {
	// qwen2vl: keys (M-RoPE sections included) and tensors checked
	file := func(sections any) *File {
		s := defaultModelSpec()
		s.arch = "qwen2vl"
		if sections == nil {
			s.skip = map[string]bool{"qwen2vl.rope.dimension_sections": true}
		} else {
			s.override = map[string]any{"qwen2vl.rope.dimension_sections": sections}
		}
		return modelFile(t, s)
	}
	require.NoError(t, ValidateModel(file([]int32{2, 3, 3, 0})))
	require.NoError(t, ValidateModel(file(int32(2))))
	for _, c := range []struct {
		name     string
		sections any
		kind     error
		abort    bool
	}{
		{"missing", nil, ErrMissingKey, false},
		{"three", []int32{2, 3, 3}, ErrBadValue, false},
		{"f32", []float32{2, 3, 3, 0}, ErrKeyType, true},
		{"u32 scalar", uint32(2), ErrKeyType, false},
	} {
		err := ValidateModel(file(c.sections))
		require.ErrorIs(t, err, c.kind, c.name)
		var ve *ValidationError
		require.ErrorAs(t, err, &ve, c.name)
		assert.Equal(t, "qwen2vl.rope.dimension_sections", ve.Key, c.name)
		assert.Equal(t, c.abort, ve.Abort, c.name)
	}
}

func TestValidationErrorText(t *testing.T) {
	e := &ValidationError{Kind: ErrDuplicateToken, Key: "k", Tensor: "t", Reason: "why", Abort: true}
	assert.Equal(t, `gguf: duplicate token string (key "k") (tensor "t"): why [would abort llama.cpp]`, e.Error())
	assert.ErrorIs(t, e, ErrWouldAbort)
	assert.NotErrorIs(t, e, ErrKeyType)
	e.Abort = false
	assert.NotErrorIs(t, e, ErrWouldAbort)
	// many problems are capped
	s := defaultModelSpec()
	for i := 0; i < 100; i++ {
		s.extraTokens = append(s.extraTokens, "b")
	}
	s.extraTokens = append(s.extraTokens, "z")
	err := ValidateModel(modelFile(t, s))
	assert.LessOrEqual(t, len(flatten(err)), maxProblems)
	assert.Contains(t, err.Error(), "duplicate tokens in all")
}

func TestValidateProjectorValid(t *testing.T) {
	for _, typ := range []string{"mlp", "idefics3", "gemma3"} {
		t.Run(typ, func(t *testing.T) {
			f := projFile(t, defaultProjSpec(typ))
			require.NoError(t, ValidateProjector(f))
			p, err := ProjectorInfo(f)
			require.NoError(t, err)
			assert.Equal(t, typ, p.Type)
			assert.Equal(t, uint32(32), p.ImageSize)
			assert.Equal(t, uint32(4), p.PatchSize)
			assert.Equal(t, uint32(32), p.EmbeddingLength)
			assert.Equal(t, [3]float32{0.5, 0.5, 0.5}, p.ImageMean)
			full := p
			assert.Equal(t, uint64(32), full.OutputEmbd)
			switch typ {
			case "mlp":
				assert.Equal(t, 64, full.TokensPerImage)
				assert.Equal(t, uint32(1), full.MergeFactor)
			case "idefics3":
				assert.Equal(t, 16, full.TokensPerImage)
				assert.Equal(t, uint32(2), full.MergeFactor)
			case "gemma3":
				assert.Equal(t, 4, full.TokensPerImage)
				assert.Equal(t, uint32(4), full.MergeFactor)
			}
			assert.Equal(t, typ == "gemma3", full.NonCausal)
			model := modelFile(t, defaultModelSpec())
			assert.NoError(t, full.CheckModel(model))
			s := defaultModelSpec()
			s.nEmbd = 64
			assert.ErrorIs(t, full.CheckModel(modelFile(t, s)), ErrProjectorMismatch)
			assert.NoError(t, full.CheckUBatch(512))
			if typ == "gemma3" {
				assert.ErrorIs(t, full.CheckUBatch(3), ErrUBatchTooSmall)
			} else {
				assert.NoError(t, full.CheckUBatch(1))
			}
		})
	}
}

func TestValidateProjectorProblems(t *testing.T) {
	tests := []struct {
		name  string
		typ   string
		edit  func(*projSpec)
		kind  error
		abort bool
	}{
		{"image_size i32", "mlp", func(s *projSpec) { s.override = map[string]any{"clip.vision.image_size": int32(32)} }, ErrKeyType, true},
		{"eps f64", "mlp", func(s *projSpec) {
			s.override = map[string]any{"clip.vision.attention.layer_norm_epsilon": 1e-6}
		}, ErrKeyType, true},
		{"use_gelu u8", "mlp", func(s *projSpec) { s.override = map[string]any{"clip.use_gelu": uint8(1)} }, ErrKeyType, true},
		{"gelu and silu", "mlp", func(s *projSpec) { s.override = map[string]any{"clip.use_silu": true} }, ErrBadValue, false},
		{"missing image_mean", "mlp", func(s *projSpec) { s.skip = map[string]bool{"clip.vision.image_mean": true} }, ErrMissingKey, true},
		{"image_std short", "mlp", func(s *projSpec) { s.override = map[string]any{"clip.vision.image_std": []float32{1, 1}} }, ErrKeyType, true},
		{"image_mean f64", "mlp", func(s *projSpec) {
			s.override = map[string]any{"clip.vision.image_mean": []float64{1, 1, 1}}
		}, ErrKeyType, true},
		{"missing patch_size", "mlp", func(s *projSpec) { s.skip = map[string]bool{"clip.vision.patch_size": true} }, ErrMissingKey, false},
		{"unknown type", "mlp", func(s *projSpec) { s.override = map[string]any{"clip.projector_type": "perceiver"} }, ErrUnknownProjector, false},
		{"no vision", "mlp", func(s *projSpec) { s.override = map[string]any{"clip.has_vision_encoder": false} }, ErrBadValue, false},
		{"idefics3 without scale", "idefics3", func(s *projSpec) {
			s.skip = map[string]bool{"clip.vision.projector.scale_factor": true}
		}, ErrBadValue, true},
		{"idefics3 scale not dividing", "idefics3", func(s *projSpec) {
			s.scale = 3
		}, ErrBadValue, true},
		{"gemma3 scale 0", "gemma3", func(s *projSpec) {
			s.override = map[string]any{"clip.vision.projector.scale_factor": uint32(0)}
		}, ErrBadValue, true},
		{"patch 0", "mlp", func(s *projSpec) { s.override = map[string]any{"clip.vision.patch_size": uint32(0)} }, ErrBadValue, true},
		{"heads not dividing", "mlp", func(s *projSpec) { s.heads = 5 }, ErrBadValue, true},
		{"pinpoints odd", "mlp", func(s *projSpec) {
			s.override = map[string]any{"clip.vision.image_grid_pinpoints": []int32{336, 672, 1008}}
		}, ErrBadValue, false},
		{"pinpoints u8", "mlp", func(s *projSpec) {
			s.override = map[string]any{"clip.vision.image_grid_pinpoints": []uint8{1, 2}}
		}, ErrKeyType, true},
		{"name not a string", "mlp", func(s *projSpec) { s.override = map[string]any{"general.name": uint32(1)} }, ErrKeyType, true},
		{"missing patch embd", "mlp", func(s *projSpec) { s.skip = map[string]bool{"v.patch_embd.weight": true} }, ErrMissingTensor, true},
		{"missing attn_q", "gemma3", func(s *projSpec) { s.skip = map[string]bool{"v.blk.1.attn_q.weight": true} }, ErrMissingTensor, true},
		{"missing attn_out", "gemma3", func(s *projSpec) { s.skip = map[string]bool{"v.blk.1.attn_out.weight": true} }, ErrMissingTensor, false},
		{"missing mm.2", "mlp", func(s *projSpec) { s.skip = map[string]bool{"mm.2.weight": true} }, ErrMissingTensor, true},
		{"missing mm.0", "mlp", func(s *projSpec) { s.skip = map[string]bool{"mm.0.weight": true} }, ErrMissingTensor, true},
		{"missing fc", "idefics3", func(s *projSpec) { s.skip = map[string]bool{"mm.model.fc.weight": true} }, ErrMissingTensor, false},
		{"missing soft_emb_norm", "gemma3", func(s *projSpec) { s.skip = map[string]bool{"mm.soft_emb_norm.weight": true} }, ErrMissingTensor, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := defaultProjSpec(tc.typ)
			tc.edit(&s)
			expectProblem(t, ValidateProjector(projFile(t, s)), tc.kind, tc.abort)
		})
	}
}

func TestValidateProjectorShapes(t *testing.T) {
	edit := func(f *File, name string, shape []uint64, typ TensorType) {
		for i := range f.Tensors {
			if f.Tensors[i].Name == name {
				f.Tensors[i].Shape = shape
				f.Tensors[i].Type = typ
			}
		}
		f.names = nil
	}
	tests := []struct {
		name   string
		typ    string
		tensor string
		shape  []uint64
		ttype  TensorType
		kind   error
		abort  bool
	}{
		{"fc width", "idefics3", "mm.model.fc.weight", []uint64{64, 32}, TypeF32, ErrTensorShape, true},
		{"input projection", "gemma3", "mm.input_projection.weight", []uint64{32, 16}, TypeF32, ErrTensorShape, true},
		{"input projection q8", "gemma3", "mm.input_projection.weight", []uint64{32, 32}, TypeQ8_0, ErrTensorShape, false},
		{"patch embd q8", "mlp", "v.patch_embd.weight", []uint64{4, 4, 3, 32}, TypeQ8_0, ErrTensorShape, true},
		{"patch embd shape", "mlp", "v.patch_embd.weight", []uint64{4, 4, 3, 16}, TypeF32, ErrTensorShape, true},
		{"ffn", "mlp", "v.blk.0.ffn_down.weight", []uint64{40, 32}, TypeF32, ErrTensorShape, true},
		{"position embd short", "mlp", "v.position_embd.weight", []uint64{32, 60}, TypeF32, ErrTensorShape, true},
		{"mm.2 input", "mlp", "mm.2.weight", []uint64{20, 32}, TypeF32, ErrTensorShape, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := projFile(t, defaultProjSpec(tc.typ))
			edit(f, tc.tensor, tc.shape, tc.ttype)
			err := ValidateProjector(f)
			expectProblem(t, err, tc.kind, tc.abort)
		})
	}

	// legacy swapped ffn naming is accepted
	f := projFile(t, defaultProjSpec("mlp"))
	edit(f, "v.blk.0.ffn_up.weight", []uint64{48, 32}, TypeF32)
	edit(f, "v.blk.0.ffn_down.weight", []uint64{32, 48}, TypeF32)
	assert.NoError(t, ValidateProjector(f))

	// other projector types: keys only
	s := defaultProjSpec("pixtral")
	f = projFile(t, s)
	require.NoError(t, ValidateProjector(f))
	p, err := ProjectorInfo(f)
	require.NoError(t, err)
	assert.Zero(t, p.OutputEmbd)
	s = defaultProjSpec("qwen2.5vl_merger")
	s.skip = map[string]bool{"clip.vision.n_wa_pattern": true}
	expectProblem(t, ValidateProjector(projFile(t, s)), ErrMissingKey, false)
	// no projector_type at all: mlp
	s = defaultProjSpec("mlp")
	s.skip = map[string]bool{"clip.projector_type": true}
	f = projFile(t, s)
	require.NoError(t, ValidateProjector(f))
	p, err = ProjectorInfo(f)
	require.NoError(t, err)
	assert.Equal(t, "mlp", p.Type)
}

// TestFullyValidatedListsAreTrue: for every architecture and projector
// type the lists name, the validation does check tensors — a file missing
// one is refused with ErrMissingTensor.
func TestFullyValidatedListsAreTrue(t *testing.T) {
	drop := func(f *File, prefix string) {
		for i, ti := range f.Tensors {
			if strings.HasPrefix(ti.Name, prefix) {
				f.Tensors = append(f.Tensors[:i:i], f.Tensors[i+1:]...)
				break
			}
		}
		f.keys, f.names = nil, nil
	}
	require.Equal(t, []string{"llama", "qwen2vl"}, FullyValidatedArchitectures())
	for _, arch := range FullyValidatedArchitectures() {
		s := defaultModelSpec()
		if arch != "llama" {
			s.arch = arch
		}
		f := modelFile(t, s)
		require.NoError(t, ValidateModel(f), arch)
		drop(f, "blk.0.ffn_down")
		assert.ErrorIs(t, ValidateModel(f), ErrMissingTensor, arch)
	}
	require.NotEmpty(t, FullyValidatedProjectorTypes())
	for _, typ := range FullyValidatedProjectorTypes() {
		f := projFile(t, defaultProjSpec(typ))
		drop(f, "mm.")
		assert.ErrorIs(t, ValidateProjector(f), ErrMissingTensor, typ)
	}
}
