//go:build vlmtest

package mtmd_test

import (
	"context"
	"fmt"
	"math"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/vlm-go/vlm/gguf"
	"github.com/vlm-go/vlm/internal/testmodel"
	"github.com/vlm-go/vlm/llama"
	"github.com/vlm-go/vlm/mtmd"
)

// uncheckedWant is what the pinned llama.cpp must do with a file, run
// without vlm's checks, for a rule to be justified.
type uncheckedWant int

const (
	wantCrash       uncheckedWant = iota // dies (SIGABRT, SIGSEGV) or hangs: an abort-class rule
	wantError                            // refuses it with an error of its own: a rule vlm may report first
	wantNonFinite                        // runs, NaN or infinite embeddings or logits
	wantDiffers                          // runs, but the embeddings differ from the good file's: the graph computes something else
	wantRuns                             // runs with finite output: vlm must accept it
	wantCorrupt                          // writes past a buffer: crashes, hangs, or runs with other embeddings
	wantOutOfBounds                      // reads past a buffer: anything (the source is the evidence); not checked
)

func (w uncheckedWant) String() string {
	return [...]string{"crash or hang", "a clean error", "non-finite output", "other embeddings than the good file", "a clean run", "a crash or other embeddings (memory overwritten)", "anything (an out-of-bounds read)"}[w]
}

// evidenceCase is one malformed (or unusual) projector file: what vlm says
// about it, and what the pinned llama.cpp does with it unchecked.
type evidenceCase struct {
	name string
	pair testmodel.ProjectorType
	edit ggufEdit
	// vlm's verdict: class nil means accepted; else the validation class,
	// the tensor or key the error must name, and whether it is abort-class.
	class   error
	mention string
	abort   bool
	want    uncheckedWant
}

// reshaped returns a tensor hook that gives the named tensors new shapes
// (zero data, type kept).
func reshaped(shapes map[string][]uint64) func(gguf.TensorInfo, []byte) (gguf.TensorInfo, []byte, bool) {
	return func(ti gguf.TensorInfo, data []byte) (gguf.TensorInfo, []byte, bool) {
		if s, ok := shapes[ti.Name]; ok {
			ti.Shape, data = s, nil
		}
		return ti, data, true
	}
}

// retyped returns a tensor hook that gives the named tensor another type
// (zero data, shape kept).
func retyped(name string, typ gguf.TensorType) func(gguf.TensorInfo, []byte) (gguf.TensorInfo, []byte, bool) {
	return editTensor(name, typ, func(s []uint64) []uint64 { return s })
}

// chain runs tensor hooks in order.
func chain(hooks ...func(gguf.TensorInfo, []byte) (gguf.TensorInfo, []byte, bool)) func(gguf.TensorInfo, []byte) (gguf.TensorInfo, []byte, bool) {
	return func(ti gguf.TensorInfo, data []byte) (gguf.TensorInfo, []byte, bool) {
		for _, h := range hooks {
			var keep bool
			if ti, data, keep = h(ti, data); !keep {
				return ti, data, false
			}
		}
		return ti, data, true
	}
}

func setU32(key string, v uint32) func(gguf.KV) (gguf.KV, bool) {
	return editKey(key, func(gguf.KV) any { return v })
}

// qwenEvidence lists, per Qwen projector type, a file for every kind of
// rule gguf's qwenTensors and qwenKeys apply. The tiny Qwen pairs: vision
// 32 wide, 2 layers, patch 8, FFN 64, merger 128 → 64 (qwen3vl_merger:
// 128 → 32, plus 32 from the deepstack layer 0); text 64 wide.
func qwenEvidence() []evidenceCase {
	q2, q25, q25o, q3 := testmodel.ProjectorQwen2VL, testmodel.ProjectorQwen25VL, testmodel.ProjectorQwen25O, testmodel.ProjectorQwen3VL
	var cases []evidenceCase
	for _, pt := range []testmodel.ProjectorType{q2, q25, q25o, q3} {
		qwen3 := pt == q3
		out := uint64(64)
		if qwen3 {
			out = 32
		}
		add := func(c evidenceCase) {
			c.name = string(pt) + "/" + c.name
			c.pair = pt
			cases = append(cases, c)
		}
		add(evidenceCase{name: "second patch kernel missing", edit: ggufEdit{Tensor: dropTensor("v.patch_embd.weight.1")},
			class: gguf.ErrMissingTensor, mention: "v.patch_embd.weight.1", abort: true, want: wantCrash})
		add(evidenceCase{name: "patch kernel bf16", edit: ggufEdit{Tensor: retyped("v.patch_embd.weight", gguf.TypeBF16)},
			class: gguf.ErrTensorShape, mention: "v.patch_embd.weight", abort: true, want: wantCrash})
		add(evidenceCase{name: "first patch kernel with fewer channels", edit: ggufEdit{Tensor: reshaped(map[string][]uint64{"v.patch_embd.weight": {8, 8, 3, 16}})},
			class: gguf.ErrTensorShape, mention: "v.patch_embd.weight", abort: true, want: wantCrash})
		add(evidenceCase{name: "second patch kernel with channels not dividing the width", edit: ggufEdit{Tensor: reshaped(map[string][]uint64{"v.patch_embd.weight.1": {8, 8, 3, 24}})},
			class: gguf.ErrTensorShape, mention: "v.patch_embd.weight.1", abort: true, want: wantCrash})
		// ggml_add broadcasts 16 channels over 32: it runs, computing garbage
		add(evidenceCase{name: "second patch kernel with channels dividing the width", edit: ggufEdit{Tensor: reshaped(map[string][]uint64{"v.patch_embd.weight.1": {8, 8, 3, 16}})},
			class: gguf.ErrTensorShape, mention: "v.patch_embd.weight.1", want: wantDiffers})
		add(evidenceCase{name: "class embedding", edit: ggufEdit{AddTensors: []gguf.TensorInfo{{Name: "v.class_embd", Type: gguf.TypeF32, Shape: []uint64{32}}}},
			class: gguf.ErrUnexpectedTensor, mention: "v.class_embd", abort: true, want: wantCrash})
		add(evidenceCase{name: "ln1 f16", edit: ggufEdit{Tensor: retyped("v.blk.0.ln1.weight", gguf.TypeF16)},
			class: gguf.ErrTensorShape, mention: "v.blk.0.ln1.weight", abort: true, want: wantCrash})
		// 16 values that ggml_mul repeats over 32: runs, computing garbage
		add(evidenceCase{name: "ln2 broadcast", edit: ggufEdit{Tensor: reshaped(map[string][]uint64{"v.blk.1.ln2.weight": {16}})},
			class: gguf.ErrTensorShape, mention: "v.blk.1.ln2.weight", want: wantDiffers})
		add(evidenceCase{name: "ffn_up bias 2-D broadcast", edit: ggufEdit{Tensor: reshaped(map[string][]uint64{"v.blk.0.ffn_up.bias": {32, 2}})},
			class: gguf.ErrTensorShape, mention: "v.blk.0.ffn_up.bias", want: wantDiffers})
		add(evidenceCase{name: "attn_out i32", edit: ggufEdit{Tensor: retyped("v.blk.0.attn_out.weight", gguf.TypeI32)},
			class: gguf.ErrTensorShape, mention: "v.blk.0.attn_out.weight", abort: true, want: wantCrash})
		add(evidenceCase{name: "mm.0 f64", edit: ggufEdit{Tensor: retyped("mm.0.weight", gguf.TypeF64)},
			class: gguf.ErrTensorShape, mention: "mm.0.weight", abort: true, want: wantCrash})
		// vision head size 2 (16 heads of 32): M-RoPE rotates 1 dimension
		add(evidenceCase{name: "head size 2", edit: ggufEdit{KV: setU32("clip.vision.attention.head_count", 16)},
			class: gguf.ErrBadValue, mention: "clip.vision.attention.head_count", abort: true, want: wantCrash})
		// head size 1: all four M-RoPE sections empty
		add(evidenceCase{name: "head size 1", edit: ggufEdit{KV: setU32("clip.vision.attention.head_count", 32)},
			class: gguf.ErrBadValue, mention: "clip.vision.attention.head_count", abort: true, want: wantCrash})
		add(evidenceCase{name: "no layers", edit: ggufEdit{KV: setU32("clip.vision.block_count", 0)},
			class: gguf.ErrBadValue, mention: "clip.vision.block_count", abort: true, want: wantCrash})
		if qwen3 {
			// no deepstack layer: the width is the merger's alone, and
			// mtmd refuses the pair
			cases[len(cases)-1].want, cases[len(cases)-1].abort = wantError, false
		}
		add(evidenceCase{name: "image_size 4 (not used)", edit: ggufEdit{KV: setU32("clip.vision.image_size", 4)}, want: wantRuns})
		add(evidenceCase{name: "image_size 0 (not used)", edit: ggufEdit{KV: setU32("clip.vision.image_size", 0)}, want: wantRuns})
		add(evidenceCase{name: "head size 4", edit: ggufEdit{KV: setU32("clip.vision.attention.head_count", 8)}, want: wantRuns})
		add(evidenceCase{name: "post_ln mis-shaped", edit: ggufEdit{Tensor: reshaped(map[string][]uint64{"v.post_ln.weight": {48}})},
			class: gguf.ErrTensorShape, mention: "v.post_ln.weight", abort: true, want: wantCrash})
		add(evidenceCase{name: "attn_out mis-shaped", edit: ggufEdit{Tensor: reshaped(map[string][]uint64{"v.blk.1.attn_out.weight": {32, 48}})},
			class: gguf.ErrTensorShape, mention: "v.blk.1.attn_out.weight", abort: true, want: wantCrash})
		add(evidenceCase{name: "attn_out missing", edit: ggufEdit{Tensor: dropTensor("v.blk.1.attn_out.weight")},
			class: gguf.ErrMissingTensor, mention: "v.blk.1.attn_out.weight", want: wantError})
		add(evidenceCase{name: "ffn_down mis-shaped", edit: ggufEdit{Tensor: reshaped(map[string][]uint64{"v.blk.0.ffn_down.weight": {48, 32}})},
			class: gguf.ErrTensorShape, mention: "v.blk.0.ffn_down.weight", abort: true, want: wantCrash})
		add(evidenceCase{name: "ffn_up missing", edit: ggufEdit{Tensor: dropTensor("v.blk.0.ffn_up.weight")},
			class: gguf.ErrMissingTensor, mention: "v.blk.0.ffn_up.weight", want: wantError})
		add(evidenceCase{name: "mm.0 not 4 patches wide", edit: ggufEdit{Tensor: reshaped(map[string][]uint64{"mm.0.weight": {64, 128}})},
			class: gguf.ErrTensorShape, mention: "mm.0.weight", abort: true, want: wantCrash})
		add(evidenceCase{name: "mm.0 missing", edit: ggufEdit{Tensor: dropTensor("mm.0.weight")},
			class: gguf.ErrMissingTensor, mention: "mm.0.weight", want: wantError})
		add(evidenceCase{name: "mm.2 bias narrower than mm.2", edit: ggufEdit{Tensor: reshaped(map[string][]uint64{"mm.2.weight": {128, out * 3 / 4}})},
			class: gguf.ErrTensorShape, mention: "mm.2.bias", abort: true, want: wantCrash})
		add(evidenceCase{name: "mm.2 bias f16", edit: ggufEdit{Tensor: retyped("mm.2.bias", gguf.TypeF16)},
			class: gguf.ErrTensorShape, mention: "mm.2.bias", abort: true, want: wantCrash})
		// optional at load and tested for in the graph: accepted
		add(evidenceCase{name: "no post_ln", edit: ggufEdit{Tensor: chain(dropTensor("v.post_ln.weight"), dropTensor("v.post_ln.bias"))}, want: wantRuns})
		add(evidenceCase{name: "no ffn biases", edit: ggufEdit{Tensor: chain(dropTensor("v.blk.0.ffn_up.bias"), dropTensor("v.blk.0.ffn_down.bias"))}, want: wantRuns})
		add(evidenceCase{name: "feature_layer (read by the llava graph only)", edit: ggufEdit{AddKVs: []gguf.KV{{Key: "clip.vision.feature_layer", Value: []int32{40}}}}, want: wantRuns})
		if qwen3 {
			add(evidenceCase{name: "patch bias missing", edit: ggufEdit{Tensor: dropTensor("v.patch_embd.bias")},
				class: gguf.ErrMissingTensor, mention: "v.patch_embd.bias", abort: true, want: wantCrash})
			add(evidenceCase{name: "position embedding missing", edit: ggufEdit{Tensor: dropTensor("v.position_embd.weight")},
				class: gguf.ErrMissingTensor, mention: "v.position_embd.weight", abort: true, want: wantCrash})
			add(evidenceCase{name: "position embedding not a square grid", edit: ggufEdit{Tensor: reshaped(map[string][]uint64{"v.position_embd.weight": {32, 60}})},
				class: gguf.ErrTensorShape, mention: "v.position_embd.weight", abort: true, want: wantCrash})
			add(evidenceCase{name: "position embedding f16", edit: ggufEdit{Tensor: retyped("v.position_embd.weight", gguf.TypeF16)},
				class: gguf.ErrTensorShape, mention: "v.position_embd.weight", abort: true, want: wantCrash})
			add(evidenceCase{name: "fused qkv missing", edit: ggufEdit{Tensor: dropTensor("v.blk.1.attn_qkv.weight")},
				class: gguf.ErrMissingTensor, mention: "v.blk.1.attn_qkv.weight", abort: true, want: wantCrash})
			add(evidenceCase{name: "fused qkv bias missing", edit: ggufEdit{Tensor: dropTensor("v.blk.0.attn_qkv.bias")},
				class: gguf.ErrMissingTensor, mention: "v.blk.0.attn_qkv.bias", abort: true, want: wantCrash})
			add(evidenceCase{name: "fused qkv mis-shaped", edit: ggufEdit{Tensor: reshaped(map[string][]uint64{"v.blk.0.attn_qkv.weight": {32, 64}})},
				class: gguf.ErrTensorShape, mention: "v.blk.0.attn_qkv.weight", abort: true, want: wantCrash})
			// Without a deepstack layer the width is the merger's alone;
			// mm.2 made 64 wide so that the text model still fits.
			add(evidenceCase{name: "no deepstack layer", edit: ggufEdit{Tensor: chain(dropTensor("v.deepstack.0.fc1.weight"),
				reshaped(map[string][]uint64{"mm.2.weight": {128, 64}, "mm.2.bias": {64}}))},
				class: gguf.ErrMissingTensor, mention: "v.deepstack.N.fc1.weight", abort: true, want: wantCrash})
			add(evidenceCase{name: "deepstack fc1 not 4 patches wide", edit: ggufEdit{Tensor: reshaped(map[string][]uint64{"v.deepstack.0.fc1.weight": {64, 128}})},
				class: gguf.ErrTensorShape, mention: "v.deepstack.0.fc1.weight", abort: true, want: wantCrash})
			// mtmd sizes the output buffer as mm.2.bias's width × (1 +
			// deepstack layers) = 64 per token: a narrower deepstack
			// output leaves rows misaligned (garbage), a wider one
			// writes past the buffer.
			add(evidenceCase{name: "deepstack narrower than the merger", edit: ggufEdit{Tensor: reshaped(map[string][]uint64{
				"v.deepstack.0.fc2.weight": {128, 16}, "v.deepstack.0.fc2.bias": {16}})},
				class: gguf.ErrTensorShape, mention: "v.deepstack.0.fc2.weight", abort: true, want: wantDiffers})
			add(evidenceCase{name: "deepstack wider than the merger", edit: ggufEdit{Tensor: reshaped(map[string][]uint64{
				"v.deepstack.0.fc2.weight": {128, 48}, "v.deepstack.0.fc2.bias": {48}})},
				class: gguf.ErrTensorShape, mention: "v.deepstack.0.fc2.weight", abort: true, want: wantCorrupt})
		} else {
			add(evidenceCase{name: "patch bias", edit: ggufEdit{AddTensors: []gguf.TensorInfo{{Name: "v.patch_embd.bias", Type: gguf.TypeF32, Shape: []uint64{32}}}},
				class: gguf.ErrUnexpectedTensor, mention: "v.patch_embd.bias", abort: true, want: wantCrash})
			add(evidenceCase{name: "q bias missing", edit: ggufEdit{Tensor: dropTensor("v.blk.1.attn_q.bias")},
				class: gguf.ErrMissingTensor, mention: "v.blk.1.attn_q.bias", abort: true, want: wantCrash})
			add(evidenceCase{name: "k weight missing", edit: ggufEdit{Tensor: dropTensor("v.blk.0.attn_k.weight")},
				class: gguf.ErrMissingTensor, mention: "v.blk.0.attn_k.weight", abort: true, want: wantCrash})
			add(evidenceCase{name: "v weight mis-shaped", edit: ggufEdit{Tensor: reshaped(map[string][]uint64{"v.blk.0.attn_v.weight": {32, 16}})},
				class: gguf.ErrTensorShape, mention: "v.blk.0.attn_v.weight", abort: true, want: wantCrash})
		}
		switch pt {
		case q3:
			// the deepstack merges 4×4 patches, the main merger 2×2:
			// their rows no longer match
			add(evidenceCase{name: "spatial merge 4", edit: ggufEdit{KV: setU32("clip.vision.spatial_merge_size", 4)},
				class: gguf.ErrBadValue, mention: "clip.vision.spatial_merge_size", abort: true, want: wantCrash})
		case q2:
			add(evidenceCase{name: "spatial merge 4", edit: ggufEdit{KV: setU32("clip.vision.spatial_merge_size", 4)},
				class: gguf.ErrBadValue, mention: "clip.vision.spatial_merge_size", want: wantDiffers})
		}
		switch pt {
		case q2, q3:
			add(evidenceCase{name: "spatial merge 0", edit: ggufEdit{KV: setU32("clip.vision.spatial_merge_size", 0)},
				class: gguf.ErrBadValue, mention: "clip.vision.spatial_merge_size", abort: true, want: wantCrash})
			// the position buffer is written four times over its end
			add(evidenceCase{name: "spatial merge 1", edit: ggufEdit{KV: setU32("clip.vision.spatial_merge_size", 1)},
				class: gguf.ErrBadValue, mention: "clip.vision.spatial_merge_size", abort: true, want: wantCorrupt})
		case q25, q25o:
			add(evidenceCase{name: "spatial merge 0 (not read)", edit: ggufEdit{KV: setU32("clip.vision.spatial_merge_size", 0)}, want: wantRuns})
			add(evidenceCase{name: "window attention with another projection_dim", edit: ggufEdit{KV: setU32("clip.vision.projection_dim", 32)},
				class: gguf.ErrBadValue, mention: "clip.vision.projection_dim", abort: true, want: wantCrash})
			add(evidenceCase{name: "no window attention, another projection_dim", edit: ggufEdit{KV: func(kv gguf.KV) (gguf.KV, bool) {
				switch kv.Key {
				case "clip.vision.n_wa_pattern":
					kv.Value = uint32(0)
				case "clip.vision.projection_dim":
					kv.Value = uint32(32)
				}
				return kv, true
			}}, want: wantRuns})
		}
	}
	return cases
}

// TestUncheckedQwenProjectorsCrash is the evidence of the Qwen projector
// rules: every file vlm refuses as abort-class crashes (or hangs) the
// pinned mtmd when loaded and encoded without vlm's checks, in a child
// process; every file it refuses otherwise is refused by mtmd too or
// computes other embeddings; every file it accepts runs. And vlm refuses
// each bad file with a typed error naming the tensor or key.
func TestUncheckedQwenProjectorsCrash(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a child process per file")
	}
	runEvidence(t, qwenEvidence())
}

// runEvidence checks vlm's verdict and the unchecked outcome of each case.
func runEvidence(t *testing.T, cases []evidenceCase) {
	goodModel := map[testmodel.ProjectorType]string{}
	goodProj := map[testmodel.ProjectorType]string{}
	goodRun := map[testmodel.ProjectorType]uncheckedOutcome{}
	dir := t.TempDir()
	for _, c := range cases {
		if _, ok := goodModel[c.pair]; !ok {
			goodModel[c.pair], goodProj[c.pair] = testmodel.TinyPair(t, c.pair, gguf.TypeF16)
			o := runUnchecked(t, uncheckedArgs{Model: goodModel[c.pair], Projector: goodProj[c.pair]})
			require.True(t, o.ran() && !o.nonFinite(), "the good %s pair: %v", c.pair, o)
			goodRun[c.pair] = o
		}
	}
	// The children run in parallel (-test.parallel, GOMAXPROCS by default):
	// the group ends when they all have.
	t.Run("unchecked", func(t *testing.T) {
		for i, c := range cases {
			t.Run(c.name, func(t *testing.T) {
				t.Parallel()
				evidenceCheck(t, c, goodModel, goodProj, goodRun, rewriteGGUF(t, goodProj[c.pair], dir, fmt.Sprintf("evidence-%02d", i), c.edit))
			})
		}
	})
	// The files vlm accepts also run through vlm's own API in this
	// process.
	acceptedThroughVLM(t, cases, goodModel, goodProj)
}

// evidenceCheck checks vlm's verdict on the file at path and what the pinned
// llama.cpp does with it unchecked.
func evidenceCheck(t *testing.T, c evidenceCase, goodModel, goodProj map[testmodel.ProjectorType]string, goodRun map[testmodel.ProjectorType]uncheckedOutcome, path string) {
	// vlm's verdict, from the file alone (as mtmd.Load checks it)
	info, err := mtmd.CheckFile(path)
	if err == nil {
		m, merr := gguf.Open(goodModel[c.pair])
		require.NoError(t, merr)
		err = info.CheckModel(m)
	}
	if c.class == nil {
		require.NoError(t, err, "vlm refuses a file the pinned mtmd runs")
	} else {
		require.Error(t, err, "vlm accepts the file")
		assert.ErrorIs(t, err, c.class)
		assert.ErrorContains(t, err, c.mention)
		assert.Equal(t, c.abort, isAbortOn(err, c.mention), "abort-class: %v", err)
	}

	o := runUnchecked(t, uncheckedArgs{Model: goodModel[c.pair], Projector: path})
	t.Logf("vlm: %v", err)
	t.Logf("unchecked mtmd: %v", o)
	switch c.want {
	case wantCrash:
		assert.True(t, o.Crashed || o.TimedOut, "want %v, got: %v", c.want, o)
	case wantError:
		assert.True(t, o.Error != "" && !o.Crashed && !o.TimedOut, "want %v, got: %v", c.want, o)
	case wantNonFinite:
		assert.True(t, o.ran() && o.nonFinite(), "want %v, got: %v", c.want, o)
	case wantDiffers:
		assert.True(t, o.ran(), "want %v, got: %v", c.want, o)
		assert.NotEqual(t, goodRun[c.pair].EmbdSum, o.EmbdSum, "want %v, got: %v", c.want, o)
	case wantCorrupt:
		assert.True(t, o.Crashed || o.TimedOut || (o.ran() && o.EmbdSum != goodRun[c.pair].EmbdSum), "want %v, got: %v", c.want, o)
	case wantRuns:
		assert.True(t, o.ran() && !o.nonFinite(), "want %v, got: %v", c.want, o)
	}
}

// acceptedThroughVLM runs the files vlm accepts through its own API.
func acceptedThroughVLM(t *testing.T, cases []evidenceCase, goodModel, goodProj map[testmodel.ProjectorType]string) {
	for _, c := range cases {
		if c.class != nil {
			continue
		}
		t.Run("vlm/"+c.name, func(t *testing.T) {
			path := rewriteGGUF(t, goodProj[c.pair], t.TempDir(), "accepted", c.edit)
			// Loads, encodes the picture (it asserts so) and answers.
			require.Len(t, greedyImageAnswer(t, goodModel[c.pair], path, 2), 2)
		})
	}
}

// isAbortOn reports whether err holds an abort-class *gguf.ValidationError
// naming name (as tensor or key).
func isAbortOn(err error, name string) bool {
	for _, e := range flattenErr(err) {
		if v, ok := e.(*gguf.ValidationError); ok && (v.Tensor == name || v.Key == name) {
			return v.Abort
		}
	}
	return false
}

// flattenErr returns err and every error it wraps, depth first.
func flattenErr(err error) []error {
	var out []error
	var walk func(error)
	walk = func(e error) {
		if e == nil {
			return
		}
		out = append(out, e)
		switch u := e.(type) {
		case interface{ Unwrap() []error }:
			for _, x := range u.Unwrap() {
				walk(x)
			}
		case interface{ Unwrap() error }:
			walk(u.Unwrap())
		}
	}
	walk(err)
	return out
}

// TestUncheckedQwen2VLTextCrash is the evidence of the rules for the
// qwen2vl text architecture (Qwen2-VL's and Qwen2.5-VL's text models):
// each file vlm refuses as abort-class crashes the pinned llama.cpp,
// unchecked, in a child process; the others it refuses are refused by
// llama.cpp's loader too.
func TestUncheckedQwen2VLTextCrash(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a child process per file")
	}
	mp, _ := testmodel.TinyPair(t, testmodel.ProjectorQwen2VL, gguf.TypeF16)
	good := runUnchecked(t, uncheckedArgs{Model: mp})
	require.True(t, good.ran() && !good.nonFinite(), "the good model: %v", good)
	dir := t.TempDir()
	for i, c := range []evidenceCase{
		{name: "q/k/v biases missing", edit: ggufEdit{Tensor: func(ti gguf.TensorInfo, data []byte) (gguf.TensorInfo, []byte, bool) {
			return ti, data, !strings.HasSuffix(ti.Name, ".attn_q.bias") && !strings.HasSuffix(ti.Name, ".attn_k.bias") && !strings.HasSuffix(ti.Name, ".attn_v.bias")
		}}, class: gguf.ErrMissingTensor, mention: "blk.0.attn_q.bias", abort: true, want: wantCrash},
		{name: "k bias missing in the last layer", edit: ggufEdit{Tensor: dropTensor("blk.1.attn_k.bias")},
			class: gguf.ErrMissingTensor, mention: "blk.1.attn_k.bias", abort: true, want: wantCrash},
		{name: "v bias f16", edit: ggufEdit{Tensor: retyped("blk.0.attn_v.bias", gguf.TypeF16)},
			class: gguf.ErrTensorShape, mention: "blk.0.attn_v.bias", abort: true, want: wantCrash},
		{name: "attn_norm f16", edit: ggufEdit{Tensor: retyped("blk.1.attn_norm.weight", gguf.TypeF16)},
			class: gguf.ErrTensorShape, mention: "blk.1.attn_norm.weight", abort: true, want: wantCrash},
		{name: "rope dimension not the head size", edit: ggufEdit{KV: setU32("qwen2vl.rope.dimension_count", 8)},
			class: gguf.ErrBadValue, mention: "qwen2vl.rope.dimension_count", abort: true, want: wantCrash},
		{name: "M-RoPE sections all 0", edit: ggufEdit{KV: editKey("qwen2vl.rope.dimension_sections", func(gguf.KV) any { return []int32{0, 0, 0, 8} })},
			class: gguf.ErrBadValue, mention: "qwen2vl.rope.dimension_sections", abort: true, want: wantCrash},
		{name: "M-RoPE sections past the head", edit: ggufEdit{KV: editKey("qwen2vl.rope.dimension_sections", func(gguf.KV) any { return []int32{8, 8, 8, 0} })},
			class: gguf.ErrBadValue, mention: "qwen2vl.rope.dimension_sections", abort: true, want: wantCrash},
		{name: "ffn_gate missing", edit: ggufEdit{Tensor: dropTensor("blk.1.ffn_gate.weight")},
			class: gguf.ErrMissingTensor, mention: "blk.1.ffn_gate.weight", want: wantError},
		{name: "attn_q mis-shaped", edit: ggufEdit{Tensor: reshaped(map[string][]uint64{"blk.0.attn_q.weight": {64, 32}})},
			class: gguf.ErrTensorShape, mention: "blk.0.attn_q.weight", want: wantError},
		{name: "extra tensor", edit: ggufEdit{AddTensors: []gguf.TensorInfo{{Name: "rope_freqs.weight", Type: gguf.TypeF32, Shape: []uint64{8}}}},
			class: gguf.ErrUnexpectedTensor, mention: "rope_freqs.weight", want: wantError},
	} {
		t.Run(c.name, func(t *testing.T) {
			path := rewriteGGUF(t, mp, dir, fmt.Sprintf("text-%02d", i), c.edit)
			err := modelVerdict(t, path)
			require.Error(t, err)
			assert.ErrorIs(t, err, c.class)
			assert.ErrorContains(t, err, c.mention)
			assert.Equal(t, c.abort, isAbortOn(err, c.mention), "abort-class: %v", err)
			_, lerr := llama.Load(context.Background(), path, llama.LoadOptions{})
			assert.ErrorIs(t, lerr, llama.ErrInvalidModel)
			o := runUnchecked(t, uncheckedArgs{Model: path})
			t.Logf("vlm: %v", err)
			t.Logf("unchecked llama.cpp: %v", o)
			switch c.want {
			case wantCrash:
				assert.True(t, o.Crashed || o.TimedOut, "want %v, got: %v", c.want, o)
			case wantError:
				assert.True(t, o.Error != "" && !o.Crashed && !o.TimedOut, "want %v, got: %v", c.want, o)
			}
		})
	}
}

// otherEvidence lists files for the tensor rules of the other fully
// validated projector types (mlp, idefics3, gemma3). The tiny pairs:
// vision 32 wide, 2 layers, FFN 64, patch 8; mlp image 32 (16 positions),
// hidden 64; idefics3 image 32, scale 2; gemma3 image 64 (64 positions),
// pooling 4; text 64 wide.
func otherEvidence() []evidenceCase {
	mlp, idefics3, gemma3 := testmodel.ProjectorMLP, testmodel.ProjectorIdefics3, testmodel.ProjectorGemma3
	var cases []evidenceCase
	add := func(pt testmodel.ProjectorType, c evidenceCase) {
		c.name = string(pt) + "/" + c.name
		c.pair = pt
		cases = append(cases, c)
	}
	add(mlp, evidenceCase{name: "position embedding missing", edit: ggufEdit{Tensor: dropTensor("v.position_embd.weight")},
		class: gguf.ErrMissingTensor, mention: "v.position_embd.weight", abort: true, want: wantCrash})
	// clip_graph_siglip adds position embeddings only when present
	add(idefics3, evidenceCase{name: "position embedding missing", edit: ggufEdit{Tensor: dropTensor("v.position_embd.weight")}, want: wantRuns})
	add(gemma3, evidenceCase{name: "position embedding missing", edit: ggufEdit{Tensor: dropTensor("v.position_embd.weight")}, want: wantRuns})
	for _, pt := range []testmodel.ProjectorType{mlp, idefics3, gemma3} {
		add(pt, evidenceCase{name: "patch kernel missing", edit: ggufEdit{Tensor: dropTensor("v.patch_embd.weight")},
			class: gguf.ErrMissingTensor, mention: "v.patch_embd.weight", abort: true, want: wantCrash})
		add(pt, evidenceCase{name: "patch kernel bf16", edit: ggufEdit{Tensor: retyped("v.patch_embd.weight", gguf.TypeBF16)},
			class: gguf.ErrTensorShape, mention: "v.patch_embd.weight", abort: true, want: wantCrash})
		add(pt, evidenceCase{name: "patch kernel mis-shaped", edit: ggufEdit{Tensor: reshaped(map[string][]uint64{"v.patch_embd.weight": {8, 8, 3, 16}})},
			class: gguf.ErrTensorShape, mention: "v.patch_embd.weight", abort: true, want: wantCrash})
		add(pt, evidenceCase{name: "position embedding short", edit: ggufEdit{Tensor: reshaped(map[string][]uint64{"v.position_embd.weight": {32, 9}})},
			class: gguf.ErrTensorShape, mention: "v.position_embd.weight", abort: true, want: wantCrash})
		add(pt, evidenceCase{name: "q weight missing", edit: ggufEdit{Tensor: dropTensor("v.blk.0.attn_q.weight")},
			class: gguf.ErrMissingTensor, mention: "v.blk.0.attn_q.weight", abort: true, want: wantCrash})
		add(pt, evidenceCase{name: "attn_out missing", edit: ggufEdit{Tensor: dropTensor("v.blk.0.attn_out.weight")},
			class: gguf.ErrMissingTensor, mention: "v.blk.0.attn_out.weight", want: wantError})
		add(pt, evidenceCase{name: "ln2 broadcast", edit: ggufEdit{Tensor: reshaped(map[string][]uint64{"v.blk.0.ln2.bias": {16}})},
			class: gguf.ErrTensorShape, mention: "v.blk.0.ln2.bias", want: wantDiffers})
		add(pt, evidenceCase{name: "ln1 mis-shaped", edit: ggufEdit{Tensor: reshaped(map[string][]uint64{"v.blk.0.ln1.weight": {24}})},
			class: gguf.ErrTensorShape, mention: "v.blk.0.ln1.weight", abort: true, want: wantCrash})
		add(pt, evidenceCase{name: "q bias mis-shaped", edit: ggufEdit{Tensor: reshaped(map[string][]uint64{"v.blk.0.attn_q.bias": {24}})},
			class: gguf.ErrTensorShape, mention: "v.blk.0.attn_q.bias", abort: true, want: wantCrash})
		add(pt, evidenceCase{name: "ffn_down mis-shaped", edit: ggufEdit{Tensor: reshaped(map[string][]uint64{"v.blk.0.ffn_down.weight": {48, 32}})},
			class: gguf.ErrTensorShape, mention: "v.blk.0.ffn_up.weight", abort: true, want: wantCrash})
	}
	add(mlp, evidenceCase{name: "mm.0 missing", edit: ggufEdit{Tensor: dropTensor("mm.0.weight")},
		class: gguf.ErrMissingTensor, mention: "mm.0.weight", abort: true, want: wantCrash})
	add(mlp, evidenceCase{name: "mm.0 bias missing", edit: ggufEdit{Tensor: dropTensor("mm.0.bias")},
		class: gguf.ErrMissingTensor, mention: "mm.0.bias", abort: true, want: wantCrash})
	add(mlp, evidenceCase{name: "mm.0 input width", edit: ggufEdit{Tensor: reshaped(map[string][]uint64{"mm.0.weight": {48, 64}})},
		class: gguf.ErrTensorShape, mention: "mm.0.weight", abort: true, want: wantCrash})
	add(mlp, evidenceCase{name: "mm.2 missing", edit: ggufEdit{Tensor: dropTensor("mm.2.weight")},
		class: gguf.ErrMissingTensor, mention: "mm.2.weight", abort: true, want: wantCrash})
	add(mlp, evidenceCase{name: "mm.2 bias missing", edit: ggufEdit{Tensor: dropTensor("mm.2.bias")},
		class: gguf.ErrMissingTensor, mention: "mm.2.bias", abort: true, want: wantCrash})
	add(idefics3, evidenceCase{name: "fc missing", edit: ggufEdit{Tensor: dropTensor("mm.model.fc.weight")},
		class: gguf.ErrMissingTensor, mention: "mm.model.fc.weight", want: wantError})
	add(gemma3, evidenceCase{name: "input projection missing", edit: ggufEdit{Tensor: dropTensor("mm.input_projection.weight")},
		class: gguf.ErrMissingTensor, mention: "mm.input_projection.weight", want: wantError})
	add(gemma3, evidenceCase{name: "input projection width", edit: ggufEdit{Tensor: reshaped(map[string][]uint64{"mm.input_projection.weight": {64, 16}})},
		class: gguf.ErrTensorShape, mention: "mm.input_projection.weight", abort: true, want: wantCrash})
	// (with real weights: TestGemma3QuantizedInputProjection)
	add(gemma3, evidenceCase{name: "input projection q8_0", edit: ggufEdit{Tensor: retyped("mm.input_projection.weight", gguf.TypeQ8_0)},
		class: gguf.ErrTensorShape, mention: "mm.input_projection.weight", want: wantDiffers})
	add(gemma3, evidenceCase{name: "soft_emb_norm missing", edit: ggufEdit{Tensor: dropTensor("mm.soft_emb_norm.weight")},
		class: gguf.ErrMissingTensor, mention: "mm.soft_emb_norm.weight", want: wantError})
	add(gemma3, evidenceCase{name: "soft_emb_norm mis-shaped", edit: ggufEdit{Tensor: reshaped(map[string][]uint64{"mm.soft_emb_norm.weight": {24}})},
		class: gguf.ErrTensorShape, mention: "mm.soft_emb_norm.weight", abort: true, want: wantCrash})
	return cases
}

// TestUncheckedOtherProjectorsCrash is the evidence of the tensor rules of
// mlp, idefics3 and gemma3, as TestUncheckedQwenProjectorsCrash is of the
// Qwen mergers'.
func TestUncheckedOtherProjectorsCrash(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a child process per file")
	}
	runEvidence(t, otherEvidence())
}

// TestGemma3QuantizedInputProjection: gemma3's graph transposes the input
// projection and makes it contiguous; with Q8_0 weights (the F16 ones
// quantized, which elsewhere changes results by well under 1%) the pinned
// mtmd runs but computes other embeddings: garbage, not a crash. vlm
// refuses the file, not as abort-class.
func TestGemma3QuantizedInputProjection(t *testing.T) {
	mp, pp := testmodel.TinyPair(t, testmodel.ProjectorGemma3, gguf.TypeF16)
	q8 := rewriteGGUF(t, pp, t.TempDir(), "q8-input-projection", ggufEdit{Tensor: func(ti gguf.TensorInfo, data []byte) (gguf.TensorInfo, []byte, bool) {
		if ti.Name == "mm.input_projection.weight" {
			q, err := gguf.EncodeQ8_0(gguf.DecodeF16(data))
			require.NoError(t, err)
			ti.Type, data = gguf.TypeQ8_0, q
		}
		return ti, data, true
	}})
	good := runUnchecked(t, uncheckedArgs{Model: mp, Projector: pp})
	o := runUnchecked(t, uncheckedArgs{Model: mp, Projector: q8})
	t.Logf("f16: %v", good)
	t.Logf("q8_0: %v", o)
	require.True(t, good.ran() && o.ran(), "%v / %v", good, o)
	assert.Greater(t, math.Abs(o.EmbdSum-good.EmbdSum), 0.2*math.Abs(good.EmbdSum), "garbage, not quantization noise")
	err := gguf.ValidateProjector(mustOpen(t, q8))
	t.Logf("vlm: %v", err)
	require.ErrorIs(t, err, gguf.ErrTensorShape)
	assert.NotErrorIs(t, err, gguf.ErrWouldAbort)
}

// keyEvidence lists files for the key rules of projectors (every type).
func keyEvidence() []evidenceCase {
	mlp, idefics3, gemma3 := testmodel.ProjectorMLP, testmodel.ProjectorIdefics3, testmodel.ProjectorGemma3
	var cases []evidenceCase
	add := func(pt testmodel.ProjectorType, c evidenceCase) {
		c.name = string(pt) + "/" + c.name
		c.pair = pt
		cases = append(cases, c)
	}
	add(mlp, evidenceCase{name: "patch size 0", edit: ggufEdit{KV: setU32("clip.vision.patch_size", 0)},
		class: gguf.ErrBadValue, mention: "clip.vision.patch_size", abort: true, want: wantCrash})
	add(mlp, evidenceCase{name: "heads not dividing the width", edit: ggufEdit{KV: setU32("clip.vision.attention.head_count", 3)},
		class: gguf.ErrBadValue, mention: "clip.vision.attention.head_count", abort: true, want: wantCrash})
	add(mlp, evidenceCase{name: "negative norm epsilon", edit: ggufEdit{KV: editKey("clip.vision.attention.layer_norm_epsilon", func(gguf.KV) any { return float32(-1) })},
		class: gguf.ErrBadValue, mention: "clip.vision.attention.layer_norm_epsilon", abort: true, want: wantCrash})
	add(mlp, evidenceCase{name: "name of type u32", edit: ggufEdit{KV: editKey("general.name", func(gguf.KV) any { return uint32(1) })},
		class: gguf.ErrKeyType, mention: "general.name", abort: true, want: wantCrash})
	add(mlp, evidenceCase{name: "unknown projector type", edit: ggufEdit{KV: editKey("clip.projector_type", func(gguf.KV) any { return "perceiver" })},
		class: gguf.ErrUnknownProjector, mention: "perceiver", want: wantError})
	// clip.cpp reads one int past the vector for the last pair's height:
	// undefined behaviour that is observed to run (not abort-class)
	add(mlp, evidenceCase{name: "odd image_grid_pinpoints", edit: ggufEdit{AddKVs: []gguf.KV{{Key: "clip.vision.image_grid_pinpoints", Value: []int32{64, 64, 96}}}},
		class: gguf.ErrBadValue, mention: "clip.vision.image_grid_pinpoints", want: wantOutOfBounds})
	add(idefics3, evidenceCase{name: "scale factor not dividing the patch grid", edit: ggufEdit{KV: setU32("clip.vision.projector.scale_factor", 3)},
		class: gguf.ErrBadValue, mention: "clip.vision.projector.scale_factor", abort: true, want: wantCrash})
	add(gemma3, evidenceCase{name: "scale factor 0", edit: ggufEdit{KV: setU32("clip.vision.projector.scale_factor", 0)},
		class: gguf.ErrBadValue, mention: "clip.vision.projector.scale_factor", abort: true, want: wantCrash})
	add(gemma3, evidenceCase{name: "scale factor not dividing the patch grid", edit: ggufEdit{KV: setU32("clip.vision.projector.scale_factor", 3)},
		class: gguf.ErrBadValue, mention: "clip.vision.projector.scale_factor", abort: true, want: wantCrash})
	return cases
}

// TestUncheckedProjectorKeysCrash is the evidence of projector key rules
// (values clip.cpp divides by, getters that assert a type, ...).
func TestUncheckedProjectorKeysCrash(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a child process per file")
	}
	runEvidence(t, keyEvidence())
}
