package testmodel

import (
	"fmt"
	"math"

	"github.com/vlm-go/vlm/gguf"
)

// GeneratorVersion changes whenever the generator's output bytes change for
// an unchanged Spec; it is part of the content-addressed file names, so a
// cache never serves files of an older generator.
const GeneratorVersion = 1

// kv is one metadata entry, in file order.
type kv struct {
	key string
	val any // string, bool, uint32, int32, float32, []string, []float32, []int32
}

// initKind says how a tensor's values are drawn.
type initKind int

const (
	initNormal initKind = iota // normal(0, std)
	initOnes                   // all 1 (norm weights)
)

// tensorPlan is one tensor to write.
type tensorPlan struct {
	name  string
	shape []uint64 // ggml order, ne0 first
	typ   gguf.TensorType
	init  initKind
	std   float32
}

func (t tensorPlan) elems() uint64 {
	n := uint64(1)
	for _, d := range t.shape {
		n *= d
	}
	return n
}

// filePlan is everything one GGUF file holds.
type filePlan struct {
	kvs     []kv
	tensors []tensorPlan
}

// params returns the number of values in all tensors (what
// llama_model_n_params reports for a text model).
func (p *filePlan) params() uint64 {
	var n uint64
	for _, t := range p.tensors {
		n += t.elems()
	}
	return n
}

// ggufString is the encoded size of a GGUF string (u64 length + bytes).
func ggufString(s string) int64 { return 8 + int64(len(s)) }

func kvValueSize(v any) int64 {
	switch v := v.(type) {
	case string:
		return ggufString(v)
	case bool:
		return 1
	case uint32, int32, float32:
		return 4
	case []string:
		n := int64(4 + 8)
		for _, s := range v {
			n += ggufString(s)
		}
		return n
	case []float32:
		return 4 + 8 + 4*int64(len(v))
	case []int32:
		return 4 + 8 + 4*int64(len(v))
	}
	panic(fmt.Sprintf("testmodel: metadata value of type %T", v))
}

func alignUp(n, a int64) int64 { return (n + a - 1) / a * a }

// size returns the exact size of the file: header, metadata, tensor infos,
// padding to the alignment, and each tensor's data padded to the alignment
// (as ggml's gguf writer lays it out).
func (p *filePlan) size() (int64, error) {
	n := int64(4 + 4 + 8 + 8) // magic, version, tensor count, kv count
	for _, e := range p.kvs {
		n += ggufString(e.key) + 4 + kvValueSize(e.val)
	}
	for _, t := range p.tensors {
		n += ggufString(t.name) + 4 + 8*int64(len(t.shape)) + 4 + 8
	}
	n = alignUp(n, gguf.DefaultAlignment)
	for _, t := range p.tensors {
		b, err := gguf.RowBytes(t.typ, t.elems())
		if err != nil {
			return 0, err
		}
		n += alignUp(int64(b), gguf.DefaultAlignment)
	}
	return n, nil
}

// check verifies every tensor's shape against its type and the limits.
func (p *filePlan) check() error {
	for _, t := range p.tensors {
		if n := t.elems(); n >= maxTensorN {
			return cfgErr(t.name, "%d values in one tensor (shape %v), at most %d", n, t.shape, uint64(maxTensorN-1))
		}
		if bs := uint64(t.typ.BlockSize()); t.shape[0]%bs != 0 {
			e := &ConfigError{Field: t.name, Reason: fmt.Sprintf("rows of %d values (shape %v) are not a multiple of %s's block size %d", t.shape[0], t.shape, t.typ, bs)}
			if t.typ == gguf.TypeQ8_0 {
				e.Err = ErrQ8Rows
			}
			return e
		}
	}
	return nil
}

// fileType is general.file_type (llama_ftype) for a weight type.
func fileType(t gguf.TensorType) uint32 {
	switch t {
	case gguf.TypeF16:
		return 1 // LLAMA_FTYPE_MOSTLY_F16
	case gguf.TypeQ8_0:
		return 7 // LLAMA_FTYPE_MOSTLY_Q8_0
	}
	return 0 // LLAMA_FTYPE_ALL_F32
}

// plans validates s and returns the plans of both files.
func (s Spec) plans() (text, proj *filePlan, err error) {
	if err := s.validateShapes(); err != nil {
		return nil, nil, err
	}
	voc, err := buildVocab(s.Text)
	if err != nil {
		return nil, nil, err
	}
	text = s.textPlan(voc)
	if err := text.check(); err != nil {
		return nil, nil, err
	}
	proj = s.projectorPlan()
	if err := proj.check(); err != nil {
		return nil, nil, err
	}
	return text, proj, nil
}

func (s Spec) description() string {
	return fmt.Sprintf("random weights for tests and benchmarks, written by vlm's internal/testmodel (generator %d, seed %d); the text it generates is meaningless", GeneratorVersion, s.Seed)
}

// biasStd is the spread of bias values: small, so that they matter little.
const biasStd = 0.02

func invSqrt(n int) float32 { return float32(1 / math.Sqrt(float64(n))) }

func (s Spec) textPlan(voc *Vocab) *filePlan {
	c := s.Text
	nv := uint64(len(voc.Tokens))
	e, ff := uint64(c.NEmbd), uint64(c.NFF)
	hd := c.NEmbd / c.NHead
	kvw := uint64(hd * c.NHeadKV)
	p := &filePlan{}
	add := func(key string, val any) { p.kvs = append(p.kvs, kv{key, val}) }
	arch := c.architecture()
	a := func(key string) string { return arch + "." + key }
	add("general.architecture", arch)
	add("general.name", "vlm testmodel "+s.Name)
	add("general.description", s.description())
	add("general.file_type", fileType(s.WeightType))
	add(a("vocab_size"), uint32(nv))
	add(a("context_length"), uint32(c.NCtxTrain))
	add(a("embedding_length"), uint32(c.NEmbd))
	add(a("block_count"), uint32(c.NLayer))
	add(a("feed_forward_length"), uint32(c.NFF))
	add(a("attention.head_count"), uint32(c.NHead))
	add(a("attention.head_count_kv"), uint32(c.NHeadKV))
	add(a("rope.dimension_count"), uint32(hd))
	add(a("rope.freq_base"), c.RopeFreqBase)
	add(a("attention.layer_norm_rms_epsilon"), c.RMSNormEps)
	if c.Family == FamilyQwen2VL {
		sec := c.ropeSections()
		add(a("rope.dimension_sections"), sec[:])
	}
	add("tokenizer.ggml.model", "llama")
	add("tokenizer.ggml.tokens", voc.Tokens)
	add("tokenizer.ggml.scores", voc.Scores)
	add("tokenizer.ggml.token_type", voc.Types)
	add("tokenizer.ggml.bos_token_id", uint32(voc.BOS))
	add("tokenizer.ggml.eos_token_id", uint32(voc.EOS))
	if voc.EOT >= 0 {
		add("tokenizer.ggml.eot_token_id", uint32(voc.EOT))
	}
	add("tokenizer.ggml.unknown_token_id", uint32(voc.UNK))
	add("tokenizer.ggml.padding_token_id", uint32(voc.PAD))
	add("tokenizer.ggml.add_bos_token", voc.AddBOS)
	add("tokenizer.ggml.add_eos_token", false)
	add("tokenizer.ggml.add_space_prefix", voc.AddSpacePrefix)
	add("tokenizer.chat_template", voc.ChatTemplate)

	w := s.WeightType
	// Output projections of each block are scaled down by sqrt(2·n_layer)
	// so that the residual stream stays near unit size however deep.
	resid := invSqrt(2 * c.NLayer)
	tensor := func(name string, typ gguf.TensorType, init initKind, std float32, shape ...uint64) {
		p.tensors = append(p.tensors, tensorPlan{name: name, shape: shape, typ: typ, init: init, std: std})
	}
	tensor("token_embd.weight", w, initNormal, invSqrt(c.NEmbd), e, nv)
	tensor("output_norm.weight", gguf.TypeF32, initOnes, 0, e)
	if !c.TiedOutput {
		tensor("output.weight", w, initNormal, invSqrt(c.NEmbd), e, nv)
	}
	for l := range c.NLayer {
		b := fmt.Sprintf("blk.%d.", l)
		tensor(b+"attn_norm.weight", gguf.TypeF32, initOnes, 0, e)
		tensor(b+"attn_q.weight", w, initNormal, invSqrt(c.NEmbd), e, e)
		tensor(b+"attn_k.weight", w, initNormal, invSqrt(c.NEmbd), e, kvw)
		tensor(b+"attn_v.weight", w, initNormal, invSqrt(c.NEmbd), e, kvw)
		tensor(b+"attn_output.weight", w, initNormal, invSqrt(c.NEmbd)*resid, e, e)
		if c.Family == FamilyQwen2VL {
			// optional at load, but llm_build_qwen2vl adds them unconditionally
			tensor(b+"attn_q.bias", gguf.TypeF32, initNormal, biasStd, e)
			tensor(b+"attn_k.bias", gguf.TypeF32, initNormal, biasStd, kvw)
			tensor(b+"attn_v.bias", gguf.TypeF32, initNormal, biasStd, kvw)
		}
		tensor(b+"ffn_norm.weight", gguf.TypeF32, initOnes, 0, e)
		tensor(b+"ffn_gate.weight", w, initNormal, invSqrt(c.NEmbd), e, ff)
		tensor(b+"ffn_up.weight", w, initNormal, invSqrt(c.NEmbd), e, ff)
		tensor(b+"ffn_down.weight", w, initNormal, invSqrt(c.NFF)*resid, ff, e)
	}
	return p
}

// architecture is the text model's general.architecture.
func (c TextConfig) architecture() string {
	if c.Family == FamilyQwen2VL {
		return "qwen2vl"
	}
	return "llama"
}

// ropeSections are the M-RoPE sections (qwen2vl.rope.dimension_sections) of
// a qwen2vl text model: the head's n_rot/2 rotation pairs split into
// temporal, height and width sections as Qwen2-VL splits them (a quarter,
// then the rest in halves: [16 24 24 0] for its 128-wide heads), and an
// unused fourth.
func (c TextConfig) ropeSections() [4]int32 {
	half := int32(c.NEmbd / c.NHead / 2)
	t := half / 4
	h := (half - t) / 2
	return [4]int32{t, h, half - t - h, 0}
}

func (s Spec) projectorPlan() *filePlan {
	c := s.Projector
	v, ff := uint64(c.NEmbd), uint64(c.NFF)
	ps := uint64(c.PatchSize)
	grid := uint64(c.ImageSize / c.PatchSize)
	out := uint64(c.OutputEmbd)
	siglip := c.Type != ProjectorMLP
	qwen := c.Type.Qwen()
	qwen25 := c.Type.qwen25()
	qwen3 := c.Type == ProjectorQwen3VL
	if qwen3 {
		out /= 2 // the merger's half; the deepstack layer gives the other
	}

	p := &filePlan{}
	add := func(key string, val any) { p.kvs = append(p.kvs, kv{key, val}) }
	add("general.architecture", "clip")
	add("general.name", "vlm testmodel "+s.Name+" mmproj")
	add("general.description", s.description())
	add("general.file_type", fileType(s.WeightType))
	add("clip.has_vision_encoder", true)
	add("clip.projector_type", string(c.Type))
	// SigLIP and Qwen3-VL's ViT: gelu; LLaVA's CLIP and Qwen2-VL's ViT:
	// quick gelu; Qwen2.5-VL's: SiLU (gated)
	add("clip.use_gelu", siglip && (!qwen || qwen3))
	if qwen25 {
		add("clip.use_silu", true)
	}
	add("clip.vision.embedding_length", uint32(c.NEmbd))
	add("clip.vision.feed_forward_length", uint32(c.NFF))
	add("clip.vision.block_count", uint32(c.NLayer))
	add("clip.vision.attention.head_count", uint32(c.NHead))
	add("clip.vision.attention.layer_norm_epsilon", c.LayerNormEps)
	add("clip.vision.projection_dim", uint32(c.OutputEmbd))
	add("clip.vision.image_size", uint32(c.ImageSize))
	add("clip.vision.patch_size", uint32(c.PatchSize))
	add("clip.vision.image_mean", c.ImageMean[:])
	add("clip.vision.image_std", c.ImageStd[:])
	switch c.Type {
	case ProjectorMLP:
	case ProjectorQwen2VL, ProjectorQwen25VL, ProjectorQwen25O, ProjectorQwen3VL:
		add("clip.vision.spatial_merge_size", uint32(c.ScaleFactor))
		if qwen25 {
			add("clip.vision.n_wa_pattern", uint32(2))
		}
	default:
		add("clip.vision.projector.scale_factor", uint32(c.ScaleFactor))
	}
	if c.PreprocImageSize > 0 {
		add("clip.vision.preproc_image_size", uint32(c.PreprocImageSize))
	}

	w := s.WeightType
	// The patch embedding feeds a convolution and gemma3's input projection
	// is transposed in the graph: neither may be quantized.
	unquantized := w
	if w == gguf.TypeQ8_0 {
		unquantized = gguf.TypeF16
	}
	f32 := gguf.TypeF32
	resid := invSqrt(2 * c.NLayer)
	tensor := func(name string, typ gguf.TensorType, init initKind, std float32, shape ...uint64) {
		p.tensors = append(p.tensors, tensorPlan{name: name, shape: shape, typ: typ, init: init, std: std})
	}
	norm := func(name string, n uint64) {
		tensor(name+".weight", f32, initOnes, 0, n)
		tensor(name+".bias", f32, initNormal, biasStd, n)
	}
	// vnorm is a vision tower norm: Qwen2.5-VL's are RMS norms, weight only.
	vnorm := func(name string, n uint64) {
		if qwen25 {
			tensor(name+".weight", f32, initOnes, 0, n)
			return
		}
		norm(name, n)
	}
	tensor("v.patch_embd.weight", unquantized, initNormal, invSqrt(c.PatchSize*c.PatchSize*3), ps, ps, 3, v)
	switch {
	case qwen:
		// Qwen2-VL's 3-D convolution over two frames, as clip.cpp takes
		// it: a second kernel for the second frame (the same image); no
		// bias (the qwen2vl graph asserts none) and no position
		// embeddings (M-RoPE) but for Qwen3-VL, which has both.
		tensor("v.patch_embd.weight.1", unquantized, initNormal, invSqrt(c.PatchSize*c.PatchSize*3), ps, ps, 3, v)
		if qwen3 {
			tensor("v.patch_embd.bias", f32, initNormal, biasStd, v)
		}
	case siglip:
		tensor("v.patch_embd.bias", f32, initNormal, biasStd, v)
	}
	if !qwen || qwen3 {
		tensor("v.position_embd.weight", f32, initNormal, 0.1, v, grid*grid)
	}
	if !siglip {
		norm("v.pre_ln", v) // CLIP has a pre-layernorm, SigLIP a post-layernorm
	}
	for l := range c.NLayer {
		b := fmt.Sprintf("v.blk.%d.", l)
		linear := func(name string, in, outw uint64, std float32) {
			tensor(b+name+".weight", w, initNormal, std, in, outw)
			tensor(b+name+".bias", f32, initNormal, biasStd, outw)
		}
		vnorm(b+"ln1", v)
		if qwen3 {
			linear("attn_qkv", v, 3*v, invSqrt(c.NEmbd))
		} else {
			linear("attn_q", v, v, invSqrt(c.NEmbd))
			linear("attn_k", v, v, invSqrt(c.NEmbd))
			linear("attn_v", v, v, invSqrt(c.NEmbd))
		}
		linear("attn_out", v, v, invSqrt(c.NEmbd)*resid)
		vnorm(b+"ln2", v)
		if qwen25 {
			linear("ffn_gate", v, ff, invSqrt(c.NEmbd))
		}
		linear("ffn_up", v, ff, invSqrt(c.NEmbd))
		linear("ffn_down", ff, v, invSqrt(c.NFF)*resid)
	}
	if siglip {
		vnorm("v.post_ln", v)
	}
	if qwen3 {
		// Qwen3-VL's deepstack merger on layer 0: the layer's output,
		// 2×2 patches merged, through norm, fc1, gelu, fc2.
		m := 4 * v
		norm("v.deepstack.0.norm", m)
		tensor("v.deepstack.0.fc1.weight", w, initNormal, invSqrt(4*c.NEmbd), m, m)
		tensor("v.deepstack.0.fc1.bias", f32, initNormal, biasStd, m)
		tensor("v.deepstack.0.fc2.weight", w, initNormal, invSqrt(4*c.NEmbd), m, out)
		tensor("v.deepstack.0.fc2.bias", f32, initNormal, biasStd, out)
	}
	switch c.Type {
	case ProjectorMLP:
		h := uint64(c.MLPHidden)
		tensor("mm.0.weight", w, initNormal, invSqrt(c.NEmbd), v, h)
		tensor("mm.0.bias", f32, initNormal, biasStd, h)
		tensor("mm.2.weight", w, initNormal, invSqrt(c.MLPHidden), h, out)
		tensor("mm.2.bias", f32, initNormal, biasStd, out)
	case ProjectorIdefics3:
		s2 := uint64(c.ScaleFactor * c.ScaleFactor)
		tensor("mm.model.fc.weight", w, initNormal, invSqrt(c.NEmbd*c.ScaleFactor*c.ScaleFactor), v*s2, out)
	case ProjectorGemma3:
		tensor("mm.soft_emb_norm.weight", f32, initOnes, 0, v)
		tensor("mm.input_projection.weight", unquantized, initNormal, invSqrt(c.NEmbd), out, v)
	case ProjectorQwen2VL, ProjectorQwen25VL, ProjectorQwen25O, ProjectorQwen3VL:
		// The merger: 2×2 neighbouring patches (4·n_embd values, after
		// v.post_ln, Qwen2-VL's ln_q) through a 4·n_embd-wide MLP.
		m := 4 * v
		tensor("mm.0.weight", w, initNormal, invSqrt(4*c.NEmbd), m, m)
		tensor("mm.0.bias", f32, initNormal, biasStd, m)
		tensor("mm.2.weight", w, initNormal, invSqrt(4*c.NEmbd), m, out)
		tensor("mm.2.bias", f32, initNormal, biasStd, out)
	}
	return p
}
