package gguf

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

var qwenTypes = []string{"qwen2vl_merger", "qwen2.5vl_merger", "qwen2.5o", "qwen3vl_merger"}

func TestValidateProjectorQwenValid(t *testing.T) {
	for _, typ := range qwenTypes {
		t.Run(typ, func(t *testing.T) {
			f := projFile(t, defaultProjSpec(typ))
			p, err := ProjectorInfo(f)
			require.NoError(t, err)
			want := typ
			if typ == "qwen2.5o" {
				want = "qwen2.5vl_merger"
			}
			assert.Equal(t, want, p.Type)
			assert.Equal(t, uint32(2), p.MergeFactor)
			assert.Equal(t, 16, p.TokensPerImage) // (32 px / 4 px / 2)²
			assert.Equal(t, uint64(32), p.OutputEmbd, "qwen3vl_merger: the merger's and the deepstack layer's 16 each")
			assert.NoError(t, p.CheckModel(modelFile(t, defaultModelSpec())))
			assert.Contains(t, FullyValidatedProjectorTypes(), typ)
		})
	}
}

// relayout gives the tensors the offsets ggml's writer would after an
// edit by hand (dropped tensors, new shapes).
func relayout(f *File) {
	var next uint64
	for i := range f.Tensors {
		_, size, err := tensorBytes(f.Tensors[i].Type, f.Tensors[i].Shape)
		if err != nil {
			continue
		}
		f.Tensors[i].Offset = next
		f.Tensors[i].Size = size
		next += pad(size, DefaultAlignment)
	}
	f.keys, f.names = nil, nil
}

// problemOn finds the *ValidationError of kind about tensor (or key) name.
func problemOn(t *testing.T, err error, kind error, name string) *ValidationError {
	t.Helper()
	require.Error(t, err)
	for _, e := range flatten(err) {
		var v *ValidationError
		if errors.As(e, &v) && v.Kind == kind && (v.Tensor == name || v.Key == name) {
			return v
		}
	}
	t.Fatalf("no %v problem naming %q in: %v", kind, name, err)
	return nil
}

// TestValidateProjectorQwenTensors: for each Qwen projector type, a missing,
// mis-shaped or mistyped tensor is refused with a typed error that names the
// tensor, abort-class where the pinned clip.cpp crashes on it (the evidence:
// mtmd's TestUncheckedQwenProjectorsCrash), a clean error where its loader
// refuses the file itself.
func TestValidateProjectorQwenTensors(t *testing.T) {
	type edit struct {
		name   string
		types  []string // empty: all
		change func(f *File)
		kind   error
		tensor string // or key
		abort  bool
	}
	drop := func(name string) func(*File) {
		return func(f *File) {
			f.Tensors = slices.DeleteFunc(f.Tensors, func(t TensorInfo) bool { return t.Name == name })
		}
	}
	set := func(name string, typ TensorType, shape ...uint64) func(*File) {
		return func(f *File) {
			for i := range f.Tensors {
				if f.Tensors[i].Name == name {
					f.Tensors[i].Type = typ
					if shape != nil {
						f.Tensors[i].Shape = shape
					}
				}
			}
		}
	}
	addT := func(name string, shape ...uint64) func(*File) {
		return func(f *File) {
			f.Tensors = append(f.Tensors, TensorInfo{Name: name, Type: TypeF32, Shape: shape, Offset: 1 << 30})
		}
	}
	setKV := func(key string, v any) func(*File) {
		return func(f *File) {
			f.KVs = slices.DeleteFunc(f.KVs, func(kv KV) bool { return kv.Key == key })
			kv := KV{Key: key, Value: v}
			switch v.(type) {
			case uint32:
				kv.Type = ValueUint32
			}
			f.KVs = append(f.KVs, kv)
		}
	}
	q2 := []string{"qwen2vl_merger", "qwen2.5vl_merger", "qwen2.5o"}
	q3 := []string{"qwen3vl_merger"}
	tests := []edit{
		{"second patch kernel missing", nil, drop("v.patch_embd.weight.1"), ErrMissingTensor, "v.patch_embd.weight.1", true},
		{"patch kernel mis-shaped", nil, set("v.patch_embd.weight", TypeF32, 4, 4, 3, 16), ErrTensorShape, "v.patch_embd.weight", true},
		{"patch kernel bf16", nil, set("v.patch_embd.weight.1", TypeBF16), ErrTensorShape, "v.patch_embd.weight.1", true},
		{"class embedding", nil, addT("v.class_embd", 32), ErrUnexpectedTensor, "v.class_embd", true},
		{"patch bias on a qwen2 graph", q2, addT("v.patch_embd.bias", 32), ErrUnexpectedTensor, "v.patch_embd.bias", true},
		{"patch bias missing", q3, drop("v.patch_embd.bias"), ErrMissingTensor, "v.patch_embd.bias", true},
		{"position embedding missing", q3, drop("v.position_embd.weight"), ErrMissingTensor, "v.position_embd.weight", true},
		{"position embedding not square", q3, set("v.position_embd.weight", TypeF32, 32, 60), ErrTensorShape, "v.position_embd.weight", true},
		{"position embedding f16", q3, set("v.position_embd.weight", TypeF16), ErrTensorShape, "v.position_embd.weight", true},
		{"q bias missing", q2, drop("v.blk.1.attn_q.bias"), ErrMissingTensor, "v.blk.1.attn_q.bias", true},
		{"k weight missing", q2, drop("v.blk.0.attn_k.weight"), ErrMissingTensor, "v.blk.0.attn_k.weight", true},
		{"v weight mis-shaped", q2, set("v.blk.0.attn_v.weight", TypeF32, 32, 16), ErrTensorShape, "v.blk.0.attn_v.weight", true},
		{"v bias f16", q2, set("v.blk.0.attn_v.bias", TypeF16), ErrTensorShape, "v.blk.0.attn_v.bias", true},
		{"fused qkv missing", q3, drop("v.blk.1.attn_qkv.weight"), ErrMissingTensor, "v.blk.1.attn_qkv.weight", true},
		{"fused qkv bias missing", q3, drop("v.blk.0.attn_qkv.bias"), ErrMissingTensor, "v.blk.0.attn_qkv.bias", true},
		{"fused qkv mis-shaped", q3, set("v.blk.0.attn_qkv.weight", TypeF32, 32, 64), ErrTensorShape, "v.blk.0.attn_qkv.weight", true},
		{"attn_out missing", nil, drop("v.blk.0.attn_out.weight"), ErrMissingTensor, "v.blk.0.attn_out.weight", false},
		{"attn_out mis-shaped", nil, set("v.blk.0.attn_out.weight", TypeF32, 32, 64), ErrTensorShape, "v.blk.0.attn_out.weight", true},
		{"ln1 mis-shaped", nil, set("v.blk.0.ln1.weight", TypeF32, 24), ErrTensorShape, "v.blk.0.ln1.weight", true},
		{"ln1 broadcast", nil, set("v.blk.0.ln1.weight", TypeF32, 16), ErrTensorShape, "v.blk.0.ln1.weight", false},
		{"ffn_up bias 2-D broadcast", nil, set("v.blk.0.ffn_up.bias", TypeF32, 24, 2), ErrTensorShape, "v.blk.0.ffn_up.bias", false},
		{"attn_out i32", nil, set("v.blk.0.attn_out.weight", TypeI32), ErrTensorShape, "v.blk.0.attn_out.weight", true},
		{"mm.0 f64", nil, set("mm.0.weight", TypeF64), ErrTensorShape, "mm.0.weight", true},
		{"no layers", q2, setKV("clip.vision.block_count", uint32(0)), ErrBadValue, "clip.vision.block_count", true},
		{"head size 2", nil, setKV("clip.vision.attention.head_count", uint32(16)), ErrBadValue, "clip.vision.attention.head_count", true},
		{"ln2 f16", nil, set("v.blk.1.ln2.weight", TypeF16), ErrTensorShape, "v.blk.1.ln2.weight", true},
		{"ffn_up missing", nil, drop("v.blk.0.ffn_up.weight"), ErrMissingTensor, "v.blk.0.ffn_up.weight", false},
		{"ffn_down mis-shaped", nil, set("v.blk.0.ffn_down.weight", TypeF32, 40, 32), ErrTensorShape, "v.blk.0.ffn_down.weight", true},
		{"ffn_up bias mis-shaped", nil, set("v.blk.0.ffn_up.bias", TypeF32, 32), ErrTensorShape, "v.blk.0.ffn_up.bias", true},
		{"post_ln f16", nil, set("v.post_ln.weight", TypeF16), ErrTensorShape, "v.post_ln.weight", true},
		{"mm.0 missing", nil, drop("mm.0.weight"), ErrMissingTensor, "mm.0.weight", false},
		{"mm.0 not 4 patches wide", nil, set("mm.0.weight", TypeF32, 64, 128), ErrTensorShape, "mm.0.weight", true},
		{"mm.0 bias missing", nil, drop("mm.0.bias"), ErrMissingTensor, "mm.0.bias", false},
		{"mm.2 input width", nil, set("mm.2.weight", TypeF32, 64, 32), ErrTensorShape, "mm.2.weight", true},
		{"mm.2 bias width", nil, set("mm.2.bias", TypeF32, 8), ErrTensorShape, "mm.2.bias", true},
		{"mm.2 bias f16", nil, set("mm.2.bias", TypeF16), ErrTensorShape, "mm.2.bias", true},
		{"no deepstack layer", q3, drop("v.deepstack.0.fc1.weight"), ErrMissingTensor, "v.deepstack.N.fc1.weight", true},
		{"deepstack fc1 input", q3, set("v.deepstack.0.fc1.weight", TypeF32, 32, 40), ErrTensorShape, "v.deepstack.0.fc1.weight", true},
		{"deepstack width differs", q3, set("v.deepstack.0.fc2.weight", TypeF32, 40, 8), ErrTensorShape, "v.deepstack.0.fc2.weight", true},
		{"spatial merge 0", []string{"qwen2vl_merger", "qwen3vl_merger"}, setKV("clip.vision.spatial_merge_size", uint32(0)), ErrBadValue, "clip.vision.spatial_merge_size", true},
		{"spatial merge 1", []string{"qwen2vl_merger", "qwen3vl_merger"}, setKV("clip.vision.spatial_merge_size", uint32(1)), ErrBadValue, "clip.vision.spatial_merge_size", true},
		{"spatial merge 4", []string{"qwen2vl_merger"}, setKV("clip.vision.spatial_merge_size", uint32(4)), ErrBadValue, "clip.vision.spatial_merge_size", false},
		{"spatial merge 4 with deepstack", q3, setKV("clip.vision.spatial_merge_size", uint32(4)), ErrBadValue, "clip.vision.spatial_merge_size", true},
		{"second patch kernel with channels dividing the width", nil, set("v.patch_embd.weight.1", TypeF32, 4, 4, 3, 16), ErrTensorShape, "v.patch_embd.weight.1", false},
		{"second patch kernel with other channels", nil, set("v.patch_embd.weight.1", TypeF32, 4, 4, 3, 24), ErrTensorShape, "v.patch_embd.weight.1", true},
		{"window attention with another projection_dim", []string{"qwen2.5vl_merger", "qwen2.5o"}, setKV("clip.vision.projection_dim", uint32(64)), ErrBadValue, "clip.vision.projection_dim", true},
	}
	for _, tc := range tests {
		for _, typ := range qwenTypes {
			if tc.types != nil && !slices.Contains(tc.types, typ) {
				continue
			}
			t.Run(typ+"/"+tc.name, func(t *testing.T) {
				f := projFile(t, defaultProjSpec(typ))
				tc.change(f)
				relayout(f)
				err := ValidateProjector(f)
				v := problemOn(t, err, tc.kind, tc.tensor)
				assert.Equal(t, tc.abort, v.Abort, "%v", v)
				assert.ErrorIs(t, err, ErrInvalid)
				assert.Contains(t, err.Error(), tc.tensor)
			})
		}
	}
}

// TestValidateProjectorQwenAccepts: what the pinned graphs handle is not
// refused.
func TestValidateProjectorQwenAccepts(t *testing.T) {
	for _, typ := range qwenTypes {
		t.Run(typ, func(t *testing.T) {
			accept := func(name string, change func(f *File)) {
				t.Helper()
				f := projFile(t, defaultProjSpec(typ))
				change(f)
				relayout(f)
				assert.NoError(t, ValidateProjector(f), name)
			}
			drop := func(names ...string) func(*File) {
				return func(f *File) {
					f.Tensors = slices.DeleteFunc(f.Tensors, func(t TensorInfo) bool { return slices.Contains(names, t.Name) })
				}
			}
			// optional norms and biases the graphs test for
			accept("no post_ln", drop("v.post_ln.weight", "v.post_ln.bias"))
			accept("no attn_out bias", drop("v.blk.0.attn_out.bias"))
			accept("no ffn biases", drop("v.blk.0.ffn_up.bias", "v.blk.0.ffn_down.bias"))
			accept("no ln1", drop("v.blk.1.ln1.weight", "v.blk.1.ln1.bias"))
			// the qwen2.5 graph does not read the merge size
			if typ == "qwen2.5vl_merger" || typ == "qwen2.5o" {
				accept("spatial merge 0", func(f *File) {
					f.KVs = append(f.KVs, KV{Key: "clip.vision.spatial_merge_size", Type: ValueUint32, Value: uint32(0)})
				})
				// without window attention the projection_dim is not read
				accept("projection_dim without window attention", func(f *File) {
					for i := range f.KVs {
						switch f.KVs[i].Key {
						case "clip.vision.n_wa_pattern":
							f.KVs[i].Value = uint32(0)
						case "clip.vision.projection_dim":
							f.KVs[i].Value = uint32(7)
						}
					}
				})
			}
			// image_size is not used by the Qwen graphs
			for _, size := range []uint32{0, 4, 100, 16384} {
				accept(fmt.Sprint("image_size ", size), func(f *File) {
					for i := range f.KVs {
						if f.KVs[i].Key == "clip.vision.image_size" {
							f.KVs[i].Value = size
						}
					}
				})
			}
			// a feature_layer key is read by the llava graph only
			accept("feature_layer", func(f *File) {
				f.KVs = append(f.KVs, KV{Key: "clip.vision.feature_layer", Type: ValueArray, ArrayType: ValueInt32, Value: []int32{40}})
			})
			// legacy swapped ffn naming: clip.cpp swaps back for qwen2 and 2.5 only
			swap := func(f *File) {
				for i := range f.Tensors {
					switch f.Tensors[i].Name {
					case "v.blk.0.ffn_up.weight":
						f.Tensors[i].Shape = []uint64{48, 32}
					case "v.blk.0.ffn_down.weight":
						f.Tensors[i].Shape = []uint64{32, 48}
					case "v.blk.0.ffn_up.bias":
						f.Tensors[i].Shape = []uint64{32}
					case "v.blk.0.ffn_down.bias":
						f.Tensors[i].Shape = []uint64{48}
					case "v.blk.0.ffn_gate.weight":
						f.Tensors[i].Shape = []uint64{32, 48}
					}
				}
			}
			if typ == "qwen3vl_merger" {
				f := projFile(t, defaultProjSpec(typ))
				swap(f)
				relayout(f)
				problemOn(t, ValidateProjector(f), ErrTensorShape, "v.blk.0.ffn_up.weight")
			} else {
				accept("swapped ffn naming", swap)
			}
		})
	}
}

// TestFeatureLayerNegativeIsIgnored: clip_graph_llava never matches a
// negative feature layer, so [-5] runs as without the key (it encodes and
// answers: mtmd's TestFeatureLayerNegativeEncodes); one past the block
// count indexes past the layers.
func TestFeatureLayerNegativeIsIgnored(t *testing.T) {
	s := defaultProjSpec("mlp")
	s.override = map[string]any{"clip.vision.feature_layer": []int32{-5}}
	assert.NoError(t, ValidateProjector(projFile(t, s)))
	s.override = map[string]any{"clip.vision.feature_layer": []int32{-1, 2}}
	assert.NoError(t, ValidateProjector(projFile(t, s)))
	s.override = map[string]any{"clip.vision.feature_layer": []int32{-5, 3}}
	expectProblem(t, ValidateProjector(projFile(t, s)), ErrBadValue, true)
}

// TestValidateModelQwen2VLTensors: the qwen2vl text architecture (Qwen2-VL's
// and Qwen2.5-VL's text models) has its tensors checked as llama.cpp creates
// them; the q/k/v biases its graph adds unchecked are required
// (abort-class, one report for a file without any), norms and biases must
// be f32, and rope.dimension_count must be the head size (the graph
// asserts it).
func TestValidateModelQwen2VLTensors(t *testing.T) {
	spec := func() modelSpec {
		s := defaultModelSpec()
		s.arch = "qwen2vl"
		return s
	}
	require.NoError(t, ValidateModel(modelFile(t, spec())))

	s := spec()
	s.skip = map[string]bool{}
	for i := range 2 {
		for _, n := range []string{"attn_q", "attn_k", "attn_v"} {
			s.skip[fmt.Sprintf("blk.%d.%s.bias", i, n)] = true
		}
	}
	err := ValidateModel(modelFile(t, s))
	v := problemOn(t, err, ErrMissingTensor, "blk.0.attn_q.bias")
	assert.True(t, v.Abort)
	assert.Len(t, flatten(err), 1, "one report for the missing biases: %v", err)

	s = spec()
	s.skip = map[string]bool{"blk.1.ffn_gate.weight": true}
	v = problemOn(t, ValidateModel(modelFile(t, s)), ErrMissingTensor, "blk.1.ffn_gate.weight")
	assert.False(t, v.Abort, "llama.cpp's loader refuses it cleanly")

	f := modelFile(t, spec())
	for i := range f.Tensors {
		if f.Tensors[i].Name == "blk.0.attn_k.bias" {
			f.Tensors[i].Type = TypeF16
		}
	}
	v = problemOn(t, ValidateModel(f), ErrTensorShape, "blk.0.attn_k.bias")
	assert.True(t, v.Abort)

	s = spec()
	s.override = map[string]any{"qwen2vl.rope.dimension_count": uint32(4)}
	v = problemOn(t, ValidateModel(modelFile(t, s)), ErrBadValue, "qwen2vl.rope.dimension_count")
	assert.True(t, v.Abort)

	for _, sec := range [][]int32{{0, 0, 0, 0}, {0, 0, 0, 4}, {100, 100, 100, 0}} {
		s = spec()
		s.override = map[string]any{"qwen2vl.rope.dimension_sections": sec}
		v = problemOn(t, ValidateModel(modelFile(t, s)), ErrBadValue, "qwen2vl.rope.dimension_sections")
		assert.True(t, v.Abort, "%v", sec)
	}
	for _, sec := range [][]int32{{4, 0, 0, 0}, {-4, 4, 4, 0}} { // observed to run
		s = spec()
		s.override = map[string]any{"qwen2vl.rope.dimension_sections": sec}
		assert.NoError(t, ValidateModel(modelFile(t, s)), "%v", sec)
	}

	f = modelFile(t, spec())
	f.Tensors = append(f.Tensors, TensorInfo{Name: "rope_freqs.weight", Type: TypeF32, Shape: []uint64{4}})
	relayout(f)
	problemOn(t, ValidateModel(f), ErrUnexpectedTensor, "rope_freqs.weight")
}

// TestQKVBiasLoopReportsOnce: the q/k/v bias check of the architectures
// not fully validated (dream, pangu-embedded) reports the first missing
// bias once; it used to go on to every later layer (a "i = n" inside a
// range loop, which Go ≥ 1.22 no longer lets end the loop).
func TestQKVBiasLoopReportsOnce(t *testing.T) {
	s := defaultModelSpec()
	s.nLayer = 4
	f := modelFile(t, s)
	for i := range f.KVs {
		if f.KVs[i].Key == "general.architecture" {
			f.KVs[i].Value = "dream"
		}
		f.KVs[i].Key = strings.Replace(f.KVs[i].Key, "llama.", "dream.", 1)
	}
	f.keys = nil
	err := ValidateModel(f)
	var missing []string
	for _, e := range flatten(err) {
		if v, ok := e.(*ValidationError); ok && v.Kind == ErrMissingTensor {
			missing = append(missing, v.Tensor)
		}
	}
	assert.Equal(t, []string{"blk.0.attn_q.bias"}, missing, "%v", err)
}

// TestCheckModelDeepstackWidth: a Qwen3-VL text model takes embeddings of
// embedding_length × (1 + n_deepstack_layers) values.
func TestCheckModelDeepstackWidth(t *testing.T) {
	p := &Projector{OutputEmbd: 64}
	f := modelFile(t, defaultModelSpec()) // 32 wide
	f.KVs = append(f.KVs, KV{Key: "llama.n_deepstack_layers", Type: ValueUint32, Value: uint32(1)})
	f.keys = nil
	assert.NoError(t, p.CheckModel(f))
	assert.ErrorIs(t, p.CheckModel(modelFile(t, defaultModelSpec())), ErrProjectorMismatch)
}
