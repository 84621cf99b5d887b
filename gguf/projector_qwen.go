package gguf

import (
	"fmt"
	"math"
)

// Qwen projector types as clip.cpp resolves them ("qwen2.5o" reads as
// "qwen2.5vl_merger" for vision).
const (
	typeQwen2VL  = "qwen2vl_merger"
	typeQwen25VL = "qwen2.5vl_merger"
	typeQwen3VL  = "qwen3vl_merger"
)

func isQwenProjector(typ string) bool {
	return typ == typeQwen2VL || typ == typeQwen25VL || typ == typeQwen3VL
}

// qwenMerge is the merge size clip.cpp's Qwen graphs use whatever
// clip.vision.spatial_merge_size says: they reshape the encoder's output
// into n_embd·4-wide rows and count ((nx/patch)/2)·((ny/patch)/2) tokens.
const qwenMerge = 2

// qwenKeys checks the keys the Qwen graphs read beyond the common ones
// (read from the pinned clip.cpp: clip_image_batch_encode's position inputs
// and clip_graph_qwen2vl/qwen3vl::build).
//
//   - clip.vision.spatial_merge_size: qwen2vl_merger and qwen3vl_merger fill
//     the M-RoPE position input stepping by it over a 2×2 block each: 0
//     never ends the loop (it writes past the buffer until the process
//     crashes), 1 writes four times the buffer (heap overflow), 3 and up
//     leave positions unset (the encoder attends with wrong positions;
//     qwen3vl_merger's deepstack merges n×n patches by it and its rows no
//     longer match the main merger's: a ggml assertion).
//     qwen2.5vl_merger does not read it (its merge ratio is a constant 2).
func (c *checker) qwenKeys(p *Projector) {
	const key = "clip.vision.spatial_merge_size"
	if p.Type == typeQwen25VL {
		return
	}
	if kv, ok := c.f.Get(key); ok {
		if n, isU32 := kv.Value.(uint32); isU32 && n != qwenMerge {
			c.add(ErrBadValue, n < qwenMerge || p.Type == typeQwen3VL, key, "", "%d: the %s graph merges 2×2 patches and lays out its M-RoPE positions by this step (0 or 1 overrun the position buffer)", n, p.Type)
		}
	}
}

// qwenTensors checks the tensors of the Qwen projector types as the pinned
// clip.cpp loads them (clip_model_loader::load_tensors: attn_out, ffn_up,
// ffn_down, mm.0 and mm.2 weight and bias are required — missing, a clean
// load error — the rest optional) and as clip_graph_qwen2vl::build
// (qwen2vl_merger, qwen2.5vl_merger, qwen2.5o) and clip_graph_qwen3vl::build
// (qwen3vl_merger) use them at the first encode: a tensor the graph uses
// unconditionally but the loader took as optional is a null pointer there
// (SIGSEGV); a mis-shaped one trips a ggml assertion (SIGABRT); a 1-D norm
// or bias of a type other than f32 aborts in the CPU add/mul kernels; a
// quantized patch kernel aborts in im2col. It sets p.OutputEmbd.
func (c *checker) qwenTensors(p *Projector) {
	ve := uint64(p.EmbeddingLength)
	ps := uint64(p.PatchSize)
	qwen3 := p.Type == typeQwen3VL
	graph := "clip_graph_qwen2vl"
	if qwen3 {
		graph = "clip_graph_qwen3vl"
	}
	// vec checks an optional (or required) 1-D f32 tensor of n values.
	vec := func(name string, n uint64, required, abortMissing bool) bool {
		return c.vecTensor(name, n, required, abortMissing, true)
	}
	// mat checks a 2-D weight [in, out] the graph multiplies by: ggml has
	// no matrix product for integer or f64 weights (SIGSEGV in the CPU
	// kernel).
	mat := func(name string, in, out uint64, abortMissing bool) (TensorInfo, bool) {
		t, ok := c.checkTensor(tensorCheck{name, []uint64{in, out}, true, false}, abortMissing, true)
		if ok && !matmulType(t.Type) {
			c.add(ErrTensorShape, true, "", name, "type %s: ggml cannot multiply by it", t.Type)
			return t, false
		}
		return t, ok
	}
	// the qwen2vl graph aborts without a layer (qwen3vl_merger needs its
	// deepstack layer anyway)
	if p.BlockCount == 0 {
		c.add(ErrBadValue, !qwen3, "clip.vision.block_count", "", "0: %s needs at least one layer", graph)
	}
	// M-RoPE in the vision attention: ggml_rope_multi rotates d_head/2
	// dimensions (asserted even) in four sections of d_head/4 (asserted
	// not all empty)
	if nHead, _ := c.f.Uint32("clip.vision.attention.head_count"); nHead > 0 {
		if dHead := ve / uint64(nHead); dHead%4 != 0 {
			c.add(ErrBadValue, true, "clip.vision.attention.head_count", "", "%d heads of %d: %s's M-RoPE needs a head size that is a multiple of 4", nHead, dHead, graph)
		}
	}

	// Patch embedding: two convolution kernels (the two frames of
	// Qwen's 3-D convolution), added; im2col takes the kernel's type.
	for _, name := range []string{"v.patch_embd.weight", "v.patch_embd.weight.1"} {
		t, ok := c.f.Tensor(name)
		switch {
		case !ok:
			c.add(ErrMissingTensor, true, "", name, "want shape [%d %d 3 %d]: %s passes it to ggml_conv_2d without checking", ps, ps, ve, graph)
		case name == "v.patch_embd.weight.1" && len(t.Shape) == 4 && t.Dim(0) == ps && t.Dim(1) == ps && t.Dim(2) == 3 &&
			t.Dim(3) > 0 && t.Dim(3) < ve && ve%t.Dim(3) == 0:
			// fewer output channels that divide the width: ggml_add
			// broadcasts them over the first kernel's (garbage, no crash)
			c.add(ErrTensorShape, false, "", name, "shape %v, want [%d %d 3 %d] (its %d channels would be repeated)", t.Shape, ps, ps, ve, t.Dim(3))
		case !sameShape(t.Shape, []uint64{ps, ps, 3, ve}):
			c.add(ErrTensorShape, true, "", name, "shape %v, want [%d %d 3 %d]", t.Shape, ps, ps, ve)
		case t.Type != TypeF32 && t.Type != TypeF16:
			c.add(ErrTensorShape, true, "", name, "type %s, want f32 or f16 (ggml_im2col)", t.Type)
		}
	}
	if _, ok := c.f.Tensor("v.class_embd"); ok {
		c.add(ErrUnexpectedTensor, true, "", "v.class_embd", "%s asserts there is no class embedding", graph)
	}
	if qwen3 {
		if _, ok := c.f.Tensor("v.patch_embd.bias"); !ok {
			c.add(ErrMissingTensor, true, "", "v.patch_embd.bias", "want shape [%d]: %s asserts it", ve, graph)
		} else {
			vec("v.patch_embd.bias", ve, true, true)
		}
		t, ok := c.f.Tensor("v.position_embd.weight")
		side := uint64(0)
		if ok {
			side = uint64(math.Sqrt(float64(t.Dim(1))))
			for side > 0 && side*side > t.Dim(1) {
				side--
			}
			for (side+1)*(side+1) <= t.Dim(1) {
				side++
			}
		}
		switch {
		case !ok:
			c.add(ErrMissingTensor, true, "", "v.position_embd.weight", "want shape [%d n²]: %s asserts it", ve, graph)
		case len(t.Shape) > 2 || t.Dim(0) != ve || t.Dim(1) == 0 || side*side != t.Dim(1):
			c.add(ErrTensorShape, true, "", t.Name, "shape %v, want [%d n²] (a square grid of positions)", t.Shape, ve)
		case t.Type != TypeF32:
			c.add(ErrTensorShape, true, "", t.Name, "type %s, want f32 (added to the f32 patches, interpolated in f32)", t.Type)
		}
	} else if _, ok := c.f.Tensor("v.patch_embd.bias"); ok {
		c.add(ErrUnexpectedTensor, true, "", "v.patch_embd.bias", "%s asserts there is no patch bias", graph)
	}
	for _, name := range []string{"v.pre_ln.weight", "v.pre_ln.bias", "v.post_ln.weight", "v.post_ln.bias"} {
		vec(name, ve, false, false)
	}

	if uint64(p.BlockCount)*3 > uint64(len(c.f.Tensors)) {
		// each layer has at least attn_out, ffn_up and ffn_down
		c.add(ErrMissingTensor, false, "", fmt.Sprintf("v.blk.%d.attn_out.weight", p.BlockCount-1), "%d layers but only %d tensors", p.BlockCount, len(c.f.Tensors))
		return
	}
	// Deepstack (qwen3vl_merger): a layer with v.deepstack.N.fc1.weight
	// feeds 2×2-merged rows (4·n_embd) through norm, fc1, gelu, fc2; the
	// results are concatenated to the merger's output.
	var deepstack []int
	dsBad := false
	for i := 0; i < int(p.BlockCount); i++ {
		b := func(s string) string { return fmt.Sprintf("v.blk.%d.%s", i, s) }
		for _, s := range []string{"ln1", "ln2"} {
			vec(b(s+".weight"), ve, false, false)
			vec(b(s+".bias"), ve, false, false)
		}
		if qwen3 {
			// fused q/k/v: the graph multiplies by it and adds its bias unchecked
			if _, ok := c.f.Tensor(b("attn_qkv.weight")); !ok {
				c.add(ErrMissingTensor, true, "", b("attn_qkv.weight"), "want shape [%d %d]: %s multiplies by it without checking", ve, 3*ve, graph)
			} else {
				mat(b("attn_qkv.weight"), ve, 3*ve, true)
			}
			if _, ok := c.f.Tensor(b("attn_qkv.bias")); !ok {
				c.add(ErrMissingTensor, true, "", b("attn_qkv.bias"), "want shape [%d]: %s adds it without checking", 3*ve, graph)
			} else {
				vec(b("attn_qkv.bias"), 3*ve, true, true)
			}
		} else {
			for _, s := range []string{"attn_q", "attn_k", "attn_v"} {
				if _, ok := c.f.Tensor(b(s + ".weight")); !ok {
					c.add(ErrMissingTensor, true, "", b(s+".weight"), "want shape [%d %d]: %s multiplies by it without checking", ve, ve, graph)
				} else {
					mat(b(s+".weight"), ve, ve, true)
				}
				if _, ok := c.f.Tensor(b(s + ".bias")); !ok {
					c.add(ErrMissingTensor, true, "", b(s+".bias"), "want shape [%d]: %s adds it without checking", ve, graph)
				} else {
					vec(b(s+".bias"), ve, true, true)
				}
			}
		}
		mat(b("attn_out.weight"), ve, ve, false)
		vec(b("attn_out.bias"), ve, false, false)
		c.qwenFFN(p, i, ve)
		if qwen3 {
			if present, ok := c.qwenDeepstack(i, ve); present {
				deepstack = append(deepstack, i)
				dsBad = dsBad || !ok
			}
		}
	}

	// The merger: 2×2 neighbouring patches (4·n_embd values) through a
	// two-layer MLP with gelu; mm.2.bias's width is the output size
	// (clip_n_mmproj_embd).
	w0, ok0 := mat("mm.0.weight", qwenMerge*qwenMerge*ve, dimOr(c.f, "mm.0.weight", 1), false)
	if !ok0 {
		return
	}
	h := w0.Dim(1)
	vec("mm.0.bias", h, true, false)
	w2, ok2 := mat("mm.2.weight", h, dimOr(c.f, "mm.2.weight", 1), false)
	if !ok2 {
		return
	}
	out := w2.Dim(1)
	// mm.2.bias's width is what mtmd sizes the output by: one that ggml
	// would broadcast still makes the buffer the wrong size
	if _, ok := c.checkTensor(tensorCheck{"mm.2.bias", []uint64{out}, true, true}, false, true); !ok {
		return
	}
	if p.Type == typeQwen25VL {
		// with window attention the graph reshapes the merger's output
		// into projection_dim-wide rows
		if wa, _ := c.f.Uint32("clip.vision.n_wa_pattern"); wa > 0 && uint64(p.ProjectionDim) != out {
			c.add(ErrBadValue, true, "clip.vision.projection_dim", "", "%d, but the merger (mm.2) produces %d: the window-attention graph reshapes its output by it", p.ProjectionDim, out)
			return
		}
	}
	if qwen3 {
		if len(deepstack) == 0 {
			c.add(ErrMissingTensor, true, "", "v.deepstack.N.fc1.weight", "no layer has a deepstack merger: %s concatenates their outputs without checking that there are any", graph)
			return
		}
		if dsBad {
			return
		}
		for _, i := range deepstack {
			if w := c.qwenDeepstackWidth(i); w != out {
				name := fmt.Sprintf("v.deepstack.%d.fc2.weight", i)
				if _, ok := c.f.Tensor(name); !ok {
					name = fmt.Sprintf("v.deepstack.%d.fc1.weight", i)
				}
				c.add(ErrTensorShape, true, "", name, "produces %d-wide rows, the merger %d: mtmd sizes the output buffer by mm.2.bias's width × (1 + deepstack layers)", w, out)
				return
			}
		}
		p.OutputEmbd = out * uint64(1+len(deepstack))
		return
	}
	p.OutputEmbd = out
}

// matmulType reports whether ggml's CPU backend multiplies by weights of
// type t (float and quantized types; not the integer types nor f64).
func matmulType(t TensorType) bool {
	switch t {
	case TypeI8, TypeI16, TypeI32, TypeI64, TypeF64:
		return false
	}
	return true
}

// dimOr returns dimension i of the named tensor, or 0 if there is none.
func dimOr(f *File, name string, i int) uint64 {
	if t, ok := f.Tensor(name); ok {
		return t.Dim(i)
	}
	return 0
}

// qwenFFN checks layer i's feed-forward tensors: ffn_up [v f] and
// ffn_down [f v] (required by the loader), the optional gate [v f] (gated
// units split the gate's and up's outputs: same shape) and biases. clip.cpp
// swaps up and down (and their biases) for qwen2vl_merger and
// qwen2.5vl_merger files written with the legacy naming (ffn_down's first
// dimension the embedding length), not for qwen3vl_merger.
func (c *checker) qwenFFN(p *Projector, i int, ve uint64) {
	b := func(s string) string { return fmt.Sprintf("v.blk.%d.%s", i, s) }
	upN, downN := b("ffn_up"), b("ffn_down")
	up, okUp := c.f.Tensor(upN + ".weight")
	down, okDown := c.f.Tensor(downN + ".weight")
	if !okUp {
		c.add(ErrMissingTensor, false, "", upN+".weight", "")
	}
	if !okDown {
		c.add(ErrMissingTensor, false, "", downN+".weight", "")
	}
	if !okUp || !okDown {
		return
	}
	if p.Type != typeQwen3VL && down.Dim(0) == ve {
		upN, downN, up, down = downN, upN, down, up
	}
	f := up.Dim(1)
	if !sameShape(up.Shape, []uint64{ve, f}) {
		c.add(ErrTensorShape, true, "", upN+".weight", "shape %v, want [%d f]", up.Shape, ve)
		return
	}
	if !sameShape(down.Shape, []uint64{f, ve}) {
		c.add(ErrTensorShape, true, "", downN+".weight", "shape %v, want [%d %d] (ffn_up is %v)", down.Shape, f, ve, up.Shape)
		return
	}
	c.checkTensor(tensorCheck{b("ffn_gate.weight"), []uint64{ve, f}, false, false}, false, true)
	c.vecTensor(upN+".bias", f, false, false, true)
	c.vecTensor(b("ffn_gate.bias"), f, false, false, true)
	c.vecTensor(downN+".bias", ve, false, false, true)
}

// qwenDeepstack checks layer i's deepstack merger, if it has one
// (v.deepstack.i.fc1.weight: has_deepstack); ok is false when it is
// mis-shaped.
func (c *checker) qwenDeepstack(i int, ve uint64) (present, ok bool) {
	d := func(s string) string { return fmt.Sprintf("v.deepstack.%d.%s", i, s) }
	fc1, has := c.f.Tensor(d("fc1.weight"))
	if !has {
		return false, true
	}
	in := qwenMerge * qwenMerge * ve
	c.vecTensor(d("norm.weight"), in, false, false, true)
	c.vecTensor(d("norm.bias"), in, false, false, true)
	if len(fc1.Shape) > 2 || fc1.Dim(0) != in {
		c.add(ErrTensorShape, true, "", fc1.Name, "shape %v, want [%d h] (2×2 merged rows)", fc1.Shape, in)
		return true, false
	}
	h := fc1.Dim(1)
	c.vecTensor(d("fc1.bias"), h, false, false, true)
	if fc2, ok := c.f.Tensor(d("fc2.weight")); ok {
		if len(fc2.Shape) > 2 || fc2.Dim(0) != h {
			c.add(ErrTensorShape, true, "", fc2.Name, "shape %v, want [%d out]", fc2.Shape, h)
			return true, false
		}
		c.vecTensor(d("fc2.bias"), fc2.Dim(1), false, false, true)
	}
	return true, true
}

// qwenDeepstackWidth is the width of layer i's deepstack output: fc2's
// output, or fc1's where there is no fc2 (build_ffn skips a null down).
func (c *checker) qwenDeepstackWidth(i int) uint64 {
	if t, ok := c.f.Tensor(fmt.Sprintf("v.deepstack.%d.fc2.weight", i)); ok {
		return t.Dim(1)
	}
	return dimOr(c.f, fmt.Sprintf("v.deepstack.%d.fc1.weight", i), 1)
}
