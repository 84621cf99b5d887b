package gguf

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"maps"
	"math"
	"slices"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// raw builds GGUF bytes by hand, for files the Writer refuses to make.
type raw struct{ bytes.Buffer }

func (r *raw) u32(v uint32) *raw { _ = binary.Write(&r.Buffer, binary.LittleEndian, v); return r }
func (r *raw) u64(v uint64) *raw { _ = binary.Write(&r.Buffer, binary.LittleEndian, v); return r }
func (r *raw) str(s string) *raw { r.u64(uint64(len(s))); r.WriteString(s); return r }
func (r *raw) header(version uint32, nTensors, nKV uint64) *raw {
	r.WriteString("GGUF")
	return r.u32(version).u64(nTensors).u64(nKV)
}
func (r *raw) kvU32(key string, v uint32) *raw { return r.str(key).u32(uint32(ValueUint32)).u32(v) }
func (r *raw) tensor(name string, typ TensorType, off uint64, shape ...uint64) *raw {
	r.str(name).u32(uint32(len(shape)))
	for _, d := range shape {
		r.u64(d)
	}
	return r.u32(uint32(typ)).u64(off)
}
func (r *raw) padTo(align int) *raw {
	for r.Len()%align != 0 {
		r.WriteByte(0)
	}
	return r
}
func (r *raw) zeros(n int) *raw { r.Write(make([]byte, n)); return r }

func mustBytes(t testing.TB, w *Writer) []byte {
	t.Helper()
	var buf bytes.Buffer
	_, err := w.WriteTo(&buf)
	require.NoError(t, err)
	return buf.Bytes()
}

func mustRead(t testing.TB, b []byte) *File {
	t.Helper()
	f, err := Read(bytes.NewReader(b), int64(len(b)))
	require.NoError(t, err)
	return f
}

// seq returns n deterministic values in [-1, 1).
func seq(n int, seed uint32) []float32 {
	out := make([]float32, n)
	x := seed*2654435761 + 1
	for i := range out {
		x ^= x << 13
		x ^= x >> 17
		x ^= x << 5
		out[i] = float32(x%20000)/10000 - 1
	}
	return out
}

func f32Tensor(t testing.TB, w *Writer, name string, shape ...uint64) {
	t.Helper()
	n := uint64(1)
	for _, d := range shape {
		n *= d
	}
	require.NoError(t, w.AddTensor(name, TypeF32, shape, EncodeF32(seq(int(n), uint32(len(name))))))
}

// modelSpec describes a tiny llama text model.
type modelSpec struct {
	arch                               string // "" is llama; "qwen2vl" adds M-RoPE sections and q/k/v biases
	nEmbd, nFF, nHead, nHeadKV, nLayer uint32
	extraTokens                        []string
	skip                               map[string]bool // keys or tensors to leave out
	override                           map[string]any  // key values to use instead
}

func defaultModelSpec() modelSpec {
	return modelSpec{nEmbd: 32, nFF: 64, nHead: 4, nHeadKV: 2, nLayer: 2,
		extraTokens: []string{"<unk>", "<s>", "</s>", "<|im_end|>", "▁", "▁a", "b"}}
}

// llamaTokens returns the vocabulary: the extra tokens first (ids 0..),
// then the 256 byte tokens.
func (s modelSpec) tokens() ([]string, []float32, []int32) {
	toks := append([]string(nil), s.extraTokens...)
	types := make([]int32, 0, len(toks)+256)
	for i := range toks {
		tt := int32(1)
		if i < 4 {
			tt = 3
		}
		types = append(types, tt)
	}
	for b := 0; b < 256; b++ {
		toks = append(toks, fmt.Sprintf("<0x%02X>", b))
		types = append(types, 6)
	}
	scores := make([]float32, len(toks))
	for i := range scores {
		scores[i] = -float32(i)
	}
	return toks, scores, types
}

// buildModel writes a valid tiny llama model (F32) following spec.
func buildModel(t testing.TB, s modelSpec) *Writer {
	t.Helper()
	w := NewWriter()
	toks, scores, types := s.tokens()
	kvs := []struct {
		k string
		v any
	}{
		{"general.architecture", "llama"},
		{"general.name", "tiny"},
		{"llama.context_length", uint32(256)},
		{"llama.embedding_length", s.nEmbd},
		{"llama.block_count", s.nLayer},
		{"llama.feed_forward_length", s.nFF},
		{"llama.attention.head_count", s.nHead},
		{"llama.attention.head_count_kv", s.nHeadKV},
		{"llama.attention.layer_norm_rms_epsilon", float32(1e-5)},
		{"llama.rope.freq_base", float32(10000)},
		{"llama.rope.dimension_count", s.nEmbd / s.nHead},
		{"tokenizer.ggml.model", "llama"},
		{"tokenizer.ggml.tokens", toks},
		{"tokenizer.ggml.scores", scores},
		{"tokenizer.ggml.token_type", types},
		{"tokenizer.ggml.unknown_token_id", uint32(0)},
		{"tokenizer.ggml.bos_token_id", uint32(1)},
		{"tokenizer.ggml.eos_token_id", uint32(3)},
		{"tokenizer.ggml.padding_token_id", uint32(0)},
		{"tokenizer.ggml.add_bos_token", true},
		{"tokenizer.chat_template", "{% for m in messages %}{{ m.content }}{% endfor %}"},
	}
	if s.arch == "qwen2vl" {
		kvs[0].v = "qwen2vl"
		for i := range kvs {
			kvs[i].k = strings.Replace(kvs[i].k, "llama.", "qwen2vl.", 1)
		}
		hd := int32(s.nEmbd / s.nHead)
		kvs = append(kvs, struct {
			k string
			v any
		}{"qwen2vl.rope.dimension_sections", []int32{hd / 8, hd / 8, hd/2 - hd/4, 0}})
	}
	for _, kv := range kvs {
		if s.skip[kv.k] {
			continue
		}
		v := kv.v
		if o, ok := s.override[kv.k]; ok {
			v = o
		}
		require.NoError(t, w.AddKV(kv.k, v))
	}
	e, ff := uint64(s.nEmbd), uint64(s.nFF)
	hd := e / uint64(s.nHead)
	nv := uint64(len(toks))
	add := func(name string, shape ...uint64) {
		if !s.skip[name] {
			f32Tensor(t, w, name, shape...)
		}
	}
	add("token_embd.weight", e, nv)
	add("output_norm.weight", e)
	for i := 0; i < int(s.nLayer); i++ {
		b := func(n string) string { return fmt.Sprintf("blk.%d.%s", i, n) }
		add(b("attn_norm.weight"), e)
		add(b("attn_q.weight"), e, hd*uint64(s.nHead))
		add(b("attn_k.weight"), e, hd*uint64(s.nHeadKV))
		add(b("attn_v.weight"), e, hd*uint64(s.nHeadKV))
		add(b("attn_output.weight"), hd*uint64(s.nHead), e)
		if s.arch == "qwen2vl" {
			add(b("attn_q.bias"), hd*uint64(s.nHead))
			add(b("attn_k.bias"), hd*uint64(s.nHeadKV))
			add(b("attn_v.bias"), hd*uint64(s.nHeadKV))
		}
		add(b("ffn_norm.weight"), e)
		add(b("ffn_gate.weight"), e, ff)
		add(b("ffn_up.weight"), e, ff)
		add(b("ffn_down.weight"), ff, e)
	}
	return w
}

// projSpec describes a tiny vision projector.
type projSpec struct {
	typ                       string
	v, ff, heads, layers      uint32
	image, patch, scale, nOut uint32
	skip                      map[string]bool
	override                  map[string]any
}

func defaultProjSpec(typ string) projSpec {
	s := projSpec{typ: typ, v: 32, ff: 48, heads: 4, layers: 2, image: 32, patch: 4, nOut: 32}
	switch typ {
	case "idefics3":
		s.scale = 2
	case "qwen3vl_merger":
		s.nOut = 16 // the merger's 16 and one deepstack layer's 16
	}
	return s
}

// isQwen reports whether typ is one of the Qwen projector types.
func isQwen(typ string) bool {
	return typ == "qwen2vl_merger" || typ == "qwen2.5vl_merger" || typ == "qwen2.5o" || typ == "qwen3vl_merger"
}

func buildProjector(t testing.TB, s projSpec) *Writer {
	t.Helper()
	w := NewWriter()
	kvs := []struct {
		k string
		v any
	}{
		{"general.architecture", "clip"},
		{"clip.has_vision_encoder", true},
		{"clip.projector_type", s.typ},
		{"clip.vision.embedding_length", s.v},
		{"clip.vision.feed_forward_length", s.ff},
		{"clip.vision.attention.head_count", s.heads},
		{"clip.vision.block_count", s.layers},
		{"clip.vision.projection_dim", s.nOut},
		{"clip.vision.image_size", s.image},
		{"clip.vision.patch_size", s.patch},
		{"clip.vision.attention.layer_norm_epsilon", float32(1e-6)},
		{"clip.vision.image_mean", []float32{0.5, 0.5, 0.5}},
		{"clip.vision.image_std", []float32{0.5, 0.5, 0.5}},
		{"clip.use_gelu", true},
	}
	if s.scale != 0 {
		kvs = append(kvs, struct {
			k string
			v any
		}{"clip.vision.projector.scale_factor", s.scale})
	}
	if s.typ == "qwen2.5vl_merger" || s.typ == "qwen2.5o" {
		kvs = append(kvs, struct {
			k string
			v any
		}{"clip.vision.n_wa_pattern", uint32(2)})
	}
	for _, kv := range kvs {
		if s.skip[kv.k] {
			continue
		}
		v := kv.v
		if o, ok := s.override[kv.k]; ok {
			v = o
		}
		require.NoError(t, w.AddKV(kv.k, v))
	}
	for _, k := range slices.Sorted(maps.Keys(s.override)) { // keys not in the base list
		if _, ok := w.keys[k]; !ok && s.override[k] != nil {
			require.NoError(t, w.AddKV(k, s.override[k]))
		}
	}
	ve, ff, ps := uint64(s.v), uint64(s.ff), uint64(s.patch)
	side := uint64(s.image / s.patch)
	add := func(name string, shape ...uint64) {
		if !s.skip[name] {
			f32Tensor(t, w, name, shape...)
		}
	}
	if isQwen(s.typ) {
		buildQwenTensors(s, add)
		return w
	}
	add("v.patch_embd.weight", ps, ps, 3, ve)
	add("v.patch_embd.bias", ve)
	add("v.position_embd.weight", ve, side*side)
	for i := 0; i < int(s.layers); i++ {
		b := func(n string) string { return fmt.Sprintf("v.blk.%d.%s", i, n) }
		for _, n := range []string{"attn_q", "attn_k", "attn_v", "attn_out"} {
			add(b(n+".weight"), ve, ve)
			add(b(n+".bias"), ve)
		}
		add(b("ln1.weight"), ve)
		add(b("ln1.bias"), ve)
		add(b("ln2.weight"), ve)
		add(b("ln2.bias"), ve)
		add(b("ffn_up.weight"), ve, ff)
		add(b("ffn_up.bias"), ff)
		add(b("ffn_down.weight"), ff, ve)
		add(b("ffn_down.bias"), ve)
	}
	add("v.post_ln.weight", ve)
	add("v.post_ln.bias", ve)
	out := uint64(s.nOut)
	switch s.typ {
	case "mlp":
		add("mm.0.weight", ve, 40)
		add("mm.0.bias", 40)
		add("mm.2.weight", 40, out)
		add("mm.2.bias", out)
	case "idefics3":
		sc := uint64(s.scale)
		add("mm.model.fc.weight", ve*sc*sc, out)
	case "gemma3":
		add("mm.input_projection.weight", out, ve)
		add("mm.soft_emb_norm.weight", ve)
	}
	return w
}

// buildQwenTensors writes the tensors of a Qwen projector as clip.cpp's
// graphs use them: two patch kernels; qwen3vl_merger with a patch bias,
// position embeddings, fused q/k/v and a deepstack merger on layer 0;
// qwen2.5vl_merger with gated FFNs; the 2×2 merger mm.0, mm.2.
func buildQwenTensors(s projSpec, add func(string, ...uint64)) {
	ve, ff, ps := uint64(s.v), uint64(s.ff), uint64(s.patch)
	side := uint64(s.image / s.patch)
	qwen3 := s.typ == "qwen3vl_merger"
	add("v.patch_embd.weight", ps, ps, 3, ve)
	add("v.patch_embd.weight.1", ps, ps, 3, ve)
	if qwen3 {
		add("v.patch_embd.bias", ve)
		add("v.position_embd.weight", ve, side*side)
	}
	for i := 0; i < int(s.layers); i++ {
		b := func(n string) string { return fmt.Sprintf("v.blk.%d.%s", i, n) }
		if qwen3 {
			add(b("attn_qkv.weight"), ve, 3*ve)
			add(b("attn_qkv.bias"), 3*ve)
		} else {
			for _, n := range []string{"attn_q", "attn_k", "attn_v"} {
				add(b(n+".weight"), ve, ve)
				add(b(n+".bias"), ve)
			}
		}
		add(b("attn_out.weight"), ve, ve)
		add(b("attn_out.bias"), ve)
		add(b("ln1.weight"), ve)
		add(b("ln2.weight"), ve)
		if s.typ != "qwen2.5vl_merger" && s.typ != "qwen2.5o" {
			add(b("ln1.bias"), ve)
			add(b("ln2.bias"), ve)
		} else {
			add(b("ffn_gate.weight"), ve, ff)
			add(b("ffn_gate.bias"), ff)
		}
		add(b("ffn_up.weight"), ve, ff)
		add(b("ffn_up.bias"), ff)
		add(b("ffn_down.weight"), ff, ve)
		add(b("ffn_down.bias"), ve)
	}
	add("v.post_ln.weight", ve)
	add("v.post_ln.bias", ve)
	out := uint64(s.nOut)
	if qwen3 {
		add("v.deepstack.0.norm.weight", 4*ve)
		add("v.deepstack.0.norm.bias", 4*ve)
		add("v.deepstack.0.fc1.weight", 4*ve, 40)
		add("v.deepstack.0.fc1.bias", 40)
		add("v.deepstack.0.fc2.weight", 40, out)
		add("v.deepstack.0.fc2.bias", out)
	}
	add("mm.0.weight", 4*ve, 4*ve)
	add("mm.0.bias", 4*ve)
	add("mm.2.weight", 4*ve, out)
	add("mm.2.bias", out)
}

var _ = math.Inf
