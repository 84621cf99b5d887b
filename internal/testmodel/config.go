package testmodel

import (
	"errors"
	"fmt"
	"math"
	"slices"

	"github.com/vlm-go/vlm/gguf"
)

// ProjectorType is a vision projector type as mtmd names it in
// clip.projector_type.
type ProjectorType string

// The projector types the generator writes.
const (
	// ProjectorMLP is LLaVA-1.5's two-layer MLP over a CLIP-style ViT
	// (mm.0, mm.2); every patch becomes one embedding.
	ProjectorMLP ProjectorType = "mlp"
	// ProjectorIdefics3 is SmolVLM's pixel shuffle (scale factor s) and one
	// linear layer over a SigLIP-style ViT; large images are cut into tiles
	// plus an overview image.
	ProjectorIdefics3 ProjectorType = "idefics3"
	// ProjectorGemma3 is Gemma 3's average pooling (kernel s), RMS norm and
	// linear input projection over a SigLIP-style ViT.
	ProjectorGemma3 ProjectorType = "gemma3"
	// ProjectorQwen2VL is Qwen2-VL's merger over its ViT: two patch
	// embedding kernels, M-RoPE in the vision attention, 2×2 neighbouring
	// patches merged by a two-layer MLP (mm.0, mm.2). Images keep their
	// aspect ratio (dynamic resolution: any multiple of 2·patch_size per
	// side within mtmd's pixel bounds), and the text model (FamilyQwen2VL,
	// general.architecture "qwen2vl") takes M-RoPE positions: 4 per image
	// token, an image of nx×ny tokens taking max(nx, ny) positions.
	ProjectorQwen2VL ProjectorType = "qwen2vl_merger"
	// ProjectorQwen25VL is Qwen2.5-VL's merger: as ProjectorQwen2VL, but
	// RMS norms (weights only), gated SiLU feed-forward blocks (ffn_gate,
	// ffn_up, ffn_down) and window attention on every layer but each
	// clip.vision.n_wa_pattern-th (2: layer 0 windowed, layer 1 full).
	ProjectorQwen25VL ProjectorType = "qwen2.5vl_merger"
	// ProjectorQwen25O is Qwen2.5-Omni's vision projector: the file says
	// "qwen2.5o", which clip.cpp reads as qwen2.5vl_merger for vision; the
	// tensors are ProjectorQwen25VL's.
	ProjectorQwen25O ProjectorType = "qwen2.5o"
	// ProjectorQwen3VL is Qwen3-VL's merger: a patch bias, learned position
	// embeddings (interpolated to the image's grid), fused q/k/v, layer
	// norms, gelu feed-forward blocks, and a deepstack merger on layer 0
	// (v.deepstack.0.*) whose output is concatenated to the main merger's:
	// each output embedding is OutputEmbd wide, half from each path. The
	// text model is FamilyQwen2VL ("qwen2vl", M-RoPE) of that width.
	ProjectorQwen3VL ProjectorType = "qwen3vl_merger"
)

// ProjectorTypes lists the projector types every package's suite runs
// end to end (see QwenProjectorTypes for the other Qwen mergers).
func ProjectorTypes() []ProjectorType {
	return []ProjectorType{ProjectorMLP, ProjectorIdefics3, ProjectorGemma3, ProjectorQwen2VL}
}

// QwenProjectorTypes lists the Qwen mergers the generator writes: each
// pairs with a FamilyQwen2VL text model and decodes with M-RoPE.
func QwenProjectorTypes() []ProjectorType {
	return []ProjectorType{ProjectorQwen2VL, ProjectorQwen25VL, ProjectorQwen25O, ProjectorQwen3VL}
}

// AllProjectorTypes lists every projector type the generator writes.
func AllProjectorTypes() []ProjectorType {
	return []ProjectorType{ProjectorMLP, ProjectorIdefics3, ProjectorGemma3, ProjectorQwen2VL, ProjectorQwen25VL, ProjectorQwen25O, ProjectorQwen3VL}
}

// Qwen reports whether t is one of the Qwen mergers (dynamic resolution,
// 2×2 merge, M-RoPE).
func (t ProjectorType) Qwen() bool {
	return t == ProjectorQwen2VL || t == ProjectorQwen25VL || t == ProjectorQwen25O || t == ProjectorQwen3VL
}

// qwen25 reports whether t has Qwen2.5-VL's tensors.
func (t ProjectorType) qwen25() bool { return t == ProjectorQwen25VL || t == ProjectorQwen25O }

// Family selects a text model's special tokens, BOS/EOS conventions and
// embedded chat template.
type Family string

// The model families the generator writes.
const (
	// FamilyLLaVA is LLaVA-1.5: <s>, </s>, <unk>, <image>, <pad>; BOS added;
	// template llava-1-5.jinja ("USER: <image>\n... ASSISTANT:").
	FamilyLLaVA Family = "llava"
	// FamilySmolVLM is SmolVLM: <|im_start|> (BOS, written by the template),
	// <end_of_utterance> (EOS), <|im_end|> (padding), and the tokens mtmd puts
	// around idefics3 images: <fake_token_around_image>, <global-img>,
	// <row_R_col_C>, "\n", "\n\n"; template smolvlm.jinja.
	FamilySmolVLM Family = "smolvlm"
	// FamilyGemma3 is Gemma 3: <bos>, <pad>, <unk>, <start_of_turn>,
	// <end_of_turn> (EOS), <start_of_image>, <end_of_image>; template
	// gemma-3.jinja.
	FamilyGemma3 Family = "gemma3"
	// FamilyQwen2VL is Qwen2-VL: general.architecture "qwen2vl" (M-RoPE, with
	// q/k/v biases), <|endoftext|> (BOS, never added, and padding),
	// <|im_start|>, <|im_end|> (EOS), and the tokens around images:
	// <|vision_start|>, <|vision_end|> (which mtmd adds), <|image_pad|>,
	// <|video_pad|>; template qwen2-vl.jinja.
	FamilyQwen2VL Family = "qwen2vl"
)

// TextConfig is the shape of a text model (general.architecture "llama", or
// "qwen2vl" for FamilyQwen2VL).
type TextConfig struct {
	// Family selects special tokens and chat template.
	Family Family `json:"family"`
	// NEmbd is the embedding width (llama.embedding_length).
	NEmbd int `json:"n_embd"`
	// NLayer is the number of transformer blocks (llama.block_count).
	NLayer int `json:"n_layer"`
	// NHead is the number of attention heads; NEmbd/NHead (the head
	// dimension) must be even.
	NHead int `json:"n_head"`
	// NHeadKV is the number of key/value heads (grouped-query attention);
	// it must divide NHead.
	NHeadKV int `json:"n_head_kv"`
	// NFF is the feed-forward width (llama.feed_forward_length).
	NFF int `json:"n_ff"`
	// NCtxTrain is the training context length (llama.context_length).
	NCtxTrain int `json:"n_ctx_train"`
	// RopeFreqBase is the RoPE base frequency (llama.rope.freq_base).
	RopeFreqBase float32 `json:"rope_freq_base"`
	// RMSNormEps is llama.attention.layer_norm_rms_epsilon.
	RMSNormEps float32 `json:"rms_norm_eps"`
	// VocabSize is the number of tokens: 0 means the generated vocabulary's
	// natural size (see [Spec.Vocabulary]); a larger value pads it with
	// deterministic filler word pieces; a smaller one is an error.
	VocabSize int `json:"vocab_size,omitempty"`
	// TiedOutput omits output.weight, so llama.cpp reuses token_embd for the
	// output projection (as SmolLM2 and Gemma do).
	TiedOutput bool `json:"tied_output,omitempty"`
}

// ProjectorConfig is the shape of a vision projector (mmproj): a ViT vision
// tower plus the projector of its Type.
type ProjectorConfig struct {
	// Type is the projector type (clip.projector_type).
	Type ProjectorType `json:"type"`
	// NEmbd is the vision tower's width (clip.vision.embedding_length).
	NEmbd int `json:"n_embd"`
	// NLayer is the number of vision blocks (clip.vision.block_count); the
	// mlp type runs all but the last, as LLaVA-1.5 does.
	NLayer int `json:"n_layer"`
	// NHead is the number of vision attention heads; it must divide NEmbd.
	NHead int `json:"n_head"`
	// NFF is the vision feed-forward width; it must differ from NEmbd
	// (clip.cpp swaps ffn_up and ffn_down when ffn_down's rows equal NEmbd).
	NFF int `json:"n_ff"`
	// ImageSize is the side of the square image the tower sees
	// (clip.vision.image_size); a multiple of PatchSize.
	ImageSize int `json:"image_size"`
	// PatchSize is the side of a patch (clip.vision.patch_size).
	PatchSize int `json:"patch_size"`
	// ScaleFactor is idefics3's pixel-shuffle factor (at least 2) or gemma3's
	// pooling kernel (clip.vision.projector.scale_factor); it must divide
	// ImageSize/PatchSize. It must be 0 for mlp. For qwen2vl_merger it is the
	// spatial merge size (clip.vision.spatial_merge_size), which must be 2
	// (clip.cpp's graph merges 2×2 patches whatever the key says), and
	// 2·PatchSize must divide ImageSize.
	ScaleFactor int `json:"scale_factor,omitempty"`
	// PreprocImageSize is idefics3's longest edge before tiling
	// (clip.vision.preproc_image_size): images are scaled so that their
	// longer side is this long, then cut into ImageSize tiles, followed by an
	// overview image. 0 means no tiles (one overview chunk per image). Only
	// for idefics3; from ImageSize to 6·ImageSize (the tile tokens go up to
	// <row_6_col_6>).
	PreprocImageSize int `json:"preproc_image_size,omitempty"`
	// MLPHidden is the width of the mlp projector's hidden layer (mm.0); only
	// for mlp, where it is required.
	MLPHidden int `json:"mlp_hidden,omitempty"`
	// OutputEmbd is the size of every output embedding; it must equal the
	// text model's NEmbd (clip.vision.projection_dim).
	OutputEmbd int `json:"output_embd"`
	// LayerNormEps is clip.vision.attention.layer_norm_epsilon.
	LayerNormEps float32 `json:"layer_norm_eps"`
	// ImageMean and ImageStd normalise pixel values (clip.vision.image_mean,
	// clip.vision.image_std); every ImageStd value must be positive.
	ImageMean [3]float32 `json:"image_mean"`
	// ImageStd: see ImageMean.
	ImageStd [3]float32 `json:"image_std"`
}

// Spec describes one generated pair of files.
type Spec struct {
	// Name labels the pair (general.name, file names); a preset's name.
	Name string `json:"name"`
	// Text is the text model's shape.
	Text TextConfig `json:"text"`
	// Projector is the vision projector's shape.
	Projector ProjectorConfig `json:"projector"`
	// Seed seeds the weights: the same Spec gives byte-identical files.
	Seed uint64 `json:"seed"`
	// WeightType is the tensor type of the 2-D weights: gguf.TypeF32,
	// gguf.TypeF16 or gguf.TypeQ8_0. Norms and biases are always F32; the
	// patch embedding and gemma3's input projection are F16 when WeightType
	// is Q8_0; position embeddings are always F32.
	WeightType gguf.TensorType `json:"weight_type"`
}

// ErrInvalidConfig is matched (errors.Is) by every error about an invalid
// Spec, TextConfig or ProjectorConfig.
var ErrInvalidConfig = errors.New("testmodel: invalid config")

// ErrProjectorMismatch is matched by the error for a projector whose output
// size differs from the text model's embedding width (mtmd would refuse the
// pair), or whose type does not fit the text model's family.
var ErrProjectorMismatch = errors.New("testmodel: projector does not match the text model")

// ErrQ8Rows is matched by the error for a Q8_0 tensor whose rows (first
// dimension) are not a multiple of 32, Q8_0's block size.
var ErrQ8Rows = errors.New("testmodel: Q8_0 rows not a multiple of 32")

// ErrUnknownPreset is returned by [Preset] for a name it does not know.
var ErrUnknownPreset = errors.New("testmodel: unknown preset")

// ConfigError reports an invalid configuration field. It matches
// ErrInvalidConfig, and Err (ErrProjectorMismatch, ErrQ8Rows) where set.
type ConfigError struct {
	// Field names the offending field ("text.n_head", "projector.image_size")
	// or tensor ("blk.0.ffn_down.weight").
	Field string
	// Reason says what is wrong with it.
	Reason string
	// Err is a more specific sentinel, or nil.
	Err error
}

// Error implements error.
func (e *ConfigError) Error() string {
	return fmt.Sprintf("testmodel: invalid config: %s: %s", e.Field, e.Reason)
}

// Is reports whether target is ErrInvalidConfig.
func (e *ConfigError) Is(target error) bool { return target == ErrInvalidConfig }

// Unwrap returns the specific sentinel, if any.
func (e *ConfigError) Unwrap() error { return e.Err }

func cfgErr(field, format string, args ...any) *ConfigError {
	return &ConfigError{Field: field, Reason: fmt.Sprintf(format, args...)}
}

// Limits that keep a Spec's files writable and loadable.
const (
	maxDim     = 1 << 16 // any width, head count or layer count
	maxVocab   = 1 << 20
	maxCtx     = 1 << 24
	maxTensorN = 1 << 31 // elements in one tensor
)

func checkRange(field string, v, lo, hi int) error {
	if v < lo || v > hi {
		return cfgErr(field, "%d is outside [%d, %d]", v, lo, hi)
	}
	return nil
}

func checkPositiveFloat(field string, v float32) error {
	if !(v > 0) || math.IsInf(float64(v), 0) {
		return cfgErr(field, "%v is not a positive finite number", v)
	}
	return nil
}

func knownFamily(f Family) bool {
	return f == FamilyLLaVA || f == FamilySmolVLM || f == FamilyGemma3 || f == FamilyQwen2VL
}

// Validate checks the text model's shape on its own (the vocabulary size is
// checked by [Spec.Validate], which knows the natural size).
func (c TextConfig) Validate() error {
	if !knownFamily(c.Family) {
		return cfgErr("text.family", "unknown family %q (want %q, %q, %q or %q)", c.Family, FamilyLLaVA, FamilySmolVLM, FamilyGemma3, FamilyQwen2VL)
	}
	for _, f := range []struct {
		name string
		v    int
	}{
		{"text.n_embd", c.NEmbd}, {"text.n_layer", c.NLayer}, {"text.n_head", c.NHead},
		{"text.n_head_kv", c.NHeadKV}, {"text.n_ff", c.NFF},
	} {
		if err := checkRange(f.name, f.v, 1, maxDim); err != nil {
			return err
		}
	}
	if err := checkRange("text.n_ctx_train", c.NCtxTrain, 1, maxCtx); err != nil {
		return err
	}
	if err := checkRange("text.vocab_size", c.VocabSize, 0, maxVocab); err != nil {
		return err
	}
	if c.NEmbd%c.NHead != 0 {
		return cfgErr("text.n_head", "n_embd %d is not divisible by n_head %d", c.NEmbd, c.NHead)
	}
	if hd := c.NEmbd / c.NHead; hd%2 != 0 {
		return cfgErr("text.n_head", "head dimension %d (n_embd/n_head) is odd; RoPE needs it even", hd)
	}
	if hd := c.NEmbd / c.NHead; c.Family == FamilyQwen2VL && hd < 8 {
		return cfgErr("text.n_head", "head dimension %d (n_embd/n_head) is below 8: M-RoPE has no room for its three sections", hd)
	}
	if c.NHead%c.NHeadKV != 0 {
		return cfgErr("text.n_head_kv", "n_head %d is not divisible by n_head_kv %d", c.NHead, c.NHeadKV)
	}
	if err := checkPositiveFloat("text.rope_freq_base", c.RopeFreqBase); err != nil {
		return err
	}
	return checkPositiveFloat("text.rms_norm_eps", c.RMSNormEps)
}

// Validate checks the projector's shape on its own (its match with the text
// model is checked by [Spec.Validate]).
func (c ProjectorConfig) Validate() error {
	if !slices.Contains(AllProjectorTypes(), c.Type) {
		return cfgErr("projector.type", "unknown projector type %q (want one of %v)", c.Type, AllProjectorTypes())
	}
	for _, f := range []struct {
		name string
		v    int
	}{
		{"projector.n_embd", c.NEmbd}, {"projector.n_layer", c.NLayer}, {"projector.n_head", c.NHead},
		{"projector.n_ff", c.NFF}, {"projector.image_size", c.ImageSize}, {"projector.patch_size", c.PatchSize},
		{"projector.output_embd", c.OutputEmbd},
	} {
		if err := checkRange(f.name, f.v, 1, maxDim); err != nil {
			return err
		}
	}
	if c.NEmbd%c.NHead != 0 {
		return cfgErr("projector.n_head", "n_embd %d is not divisible by n_head %d", c.NEmbd, c.NHead)
	}
	if c.NFF == c.NEmbd {
		return cfgErr("projector.n_ff", "n_ff equals n_embd (%d): clip.cpp would take ffn_down for a swapped ffn_up", c.NFF)
	}
	if c.ImageSize%c.PatchSize != 0 {
		return cfgErr("projector.image_size", "image_size %d is not divisible by patch_size %d", c.ImageSize, c.PatchSize)
	}
	grid := c.ImageSize / c.PatchSize
	switch c.Type {
	case ProjectorMLP:
		if c.ScaleFactor != 0 {
			return cfgErr("projector.scale_factor", "must be 0 for the mlp projector, got %d", c.ScaleFactor)
		}
		if err := checkRange("projector.mlp_hidden", c.MLPHidden, 1, maxDim); err != nil {
			return err
		}
	case ProjectorIdefics3:
		if err := checkRange("projector.scale_factor", c.ScaleFactor, 2, maxDim); err != nil {
			return err
		}
		if grid%c.ScaleFactor != 0 {
			return cfgErr("projector.scale_factor", "patch grid %d (image_size/patch_size) is not divisible by scale_factor %d", grid, c.ScaleFactor)
		}
		if c.PreprocImageSize != 0 {
			// SmolVLM's vocabulary has <row_R_col_C> for R, C <= 6.
			if err := checkRange("projector.preproc_image_size", c.PreprocImageSize, c.ImageSize, idefics3MaxTiles*c.ImageSize); err != nil {
				return err
			}
		}
	case ProjectorGemma3:
		if err := checkRange("projector.scale_factor", c.ScaleFactor, 1, maxDim); err != nil {
			return err
		}
		if grid%c.ScaleFactor != 0 {
			return cfgErr("projector.scale_factor", "patch grid %d (image_size/patch_size) is not divisible by the pooling kernel %d", grid, c.ScaleFactor)
		}
	case ProjectorQwen2VL, ProjectorQwen25VL, ProjectorQwen25O, ProjectorQwen3VL:
		if c.Type == ProjectorQwen3VL && c.OutputEmbd%2 != 0 {
			return cfgErr("projector.output_embd", "%d is odd: qwen3vl_merger's embeddings are half merger, half deepstack", c.OutputEmbd)
		}
		if c.ScaleFactor != 2 {
			return cfgErr("projector.scale_factor", "the qwen2vl_merger's spatial merge size must be 2 (clip.cpp merges 2×2 patches), got %d", c.ScaleFactor)
		}
		if grid%2 != 0 {
			return cfgErr("projector.image_size", "patch grid %d (image_size/patch_size) is odd: qwen2vl_merger merges 2×2 patches", grid)
		}
		if hd := c.NEmbd / c.NHead; hd%4 != 0 {
			return cfgErr("projector.n_head", "vision head dimension %d is not a multiple of 4 (M-RoPE's four sections)", hd)
		}
	}
	if c.Type != ProjectorIdefics3 && c.PreprocImageSize != 0 {
		return cfgErr("projector.preproc_image_size", "only the idefics3 projector tiles images, got %d for %s", c.PreprocImageSize, c.Type)
	}
	if c.Type != ProjectorMLP && c.MLPHidden != 0 {
		return cfgErr("projector.mlp_hidden", "only the mlp projector has a hidden layer, got %d for %s", c.MLPHidden, c.Type)
	}
	if err := checkPositiveFloat("projector.layer_norm_eps", c.LayerNormEps); err != nil {
		return err
	}
	for i := range 3 {
		if m := c.ImageMean[i]; math.IsNaN(float64(m)) || math.IsInf(float64(m), 0) {
			return cfgErr("projector.image_mean", "value %d is not finite", i)
		}
		if err := checkPositiveFloat(fmt.Sprintf("projector.image_std[%d]", i), c.ImageStd[i]); err != nil {
			return err
		}
	}
	return nil
}

// Validate checks the whole spec: both configs, their match (projector
// output size = text embedding width, projector type fits the family), the
// weight type, the vocabulary size and every tensor's shape for its type
// (Q8_0 rows a multiple of 32, element counts within limits).
func (s Spec) Validate() error {
	_, _, err := s.plans()
	return err
}

// validateShapes is the part of Validate that needs no tensor plan.
func (s Spec) validateShapes() error {
	if err := s.Text.Validate(); err != nil {
		return err
	}
	if err := s.Projector.Validate(); err != nil {
		return err
	}
	switch s.WeightType {
	case gguf.TypeF32, gguf.TypeF16, gguf.TypeQ8_0:
	default:
		return cfgErr("weight_type", "%v is not one of f32, f16, q8_0", s.WeightType)
	}
	if s.Projector.OutputEmbd != s.Text.NEmbd {
		return &ConfigError{Field: "projector.output_embd", Err: ErrProjectorMismatch,
			Reason: fmt.Sprintf("projector output size %d differs from the text model's n_embd %d", s.Projector.OutputEmbd, s.Text.NEmbd)}
	}
	switch {
	case s.Projector.Type == ProjectorIdefics3 && s.Text.Family != FamilySmolVLM,
		s.Projector.Type == ProjectorGemma3 && s.Text.Family != FamilyGemma3,
		// M-RoPE both ways: a qwen2vl_merger's images take 4 positions per
		// token, which only the qwen2vl architecture reads.
		s.Projector.Type.Qwen() != (s.Text.Family == FamilyQwen2VL):
		return &ConfigError{Field: "text.family", Err: ErrProjectorMismatch,
			Reason: fmt.Sprintf("projector %s needs the special tokens of another family than %s", s.Projector.Type, s.Text.Family)}
	}
	return nil
}
