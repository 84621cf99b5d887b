package testmodel

import (
	"fmt"
	"slices"

	"github.com/vlm-go/vlm/gguf"
)

// Image normalisation constants of the vision towers the presets imitate.
var (
	siglipMean = [3]float32{0.5, 0.5, 0.5}
	siglipStd  = [3]float32{0.5, 0.5, 0.5}
	clipMean   = [3]float32{0.48145466, 0.4578275, 0.40821073}
	clipStd    = [3]float32{0.26862954, 0.26130258, 0.27577711}
)

// Preset names.
const (
	// PresetTiny is PresetTinyIdefics3.
	PresetTiny = "tiny"
	// PresetTinyMLP is a tiny LLaVA-style pair: text 64 wide, 2 layers, 4
	// heads (2 KV), n_ff 128, untied output; vision 32 wide, 2 layers,
	// image 32 px, patch 8 → 16 embeddings per image.
	PresetTinyMLP = "tiny-mlp"
	// PresetTinyIdefics3 is a tiny SmolVLM-style pair: text as tiny-mlp but
	// tied output; vision 32 wide, 2 layers, image 32 px, patch 8, scale
	// factor 2 → 4 embeddings per chunk; preproc 64 px, so an image becomes
	// up to 2×2 tiles plus an overview (a 64×64 image: 5 chunks, 20
	// embeddings).
	PresetTinyIdefics3 = "tiny-idefics3"
	// PresetTinyGemma3 is a tiny Gemma-3-style pair: text as tiny-idefics3;
	// vision 32 wide, 2 layers, image 64 px, patch 8, pooling 4 → 4
	// embeddings per image.
	PresetTinyGemma3 = "tiny-gemma3"
	// PresetTinyQwen2VL is a tiny Qwen2-VL-style pair: text as tiny-mlp
	// (untied output) but general.architecture "qwen2vl" with q/k/v biases
	// and M-RoPE sections [2 3 3 0]; vision 32 wide, 2 layers, patch 8,
	// spatial merge 2, image size 64 (only what vlm's validator reports as
	// tokens per image: the encoder takes any size) → a 64×64 image is 4×4
	// = 16 embeddings taking 4 positions; images below 2048 pixels (8
	// tokens) are scaled up, above 4096 tokens down.
	PresetTinyQwen2VL = "tiny-qwen2vl"
	// PresetTinyQwen25VL is tiny-qwen2vl with a Qwen2.5-VL-style projector
	// (qwen2.5vl_merger: RMS norms, gated SiLU FFNs, window attention on
	// layer 0).
	PresetTinyQwen25VL = "tiny-qwen25vl"
	// PresetTinyQwen25O is tiny-qwen25vl with the projector type written as
	// Qwen2.5-Omni's "qwen2.5o".
	PresetTinyQwen25O = "tiny-qwen25o"
	// PresetTinyQwen3VL is tiny-qwen2vl with a Qwen3-VL-style projector
	// (qwen3vl_merger: patch bias, learned position embeddings, fused
	// q/k/v, a deepstack merger on layer 0): each 64-wide embedding is the
	// merger's 32 and the deepstack layer's 32.
	PresetTinyQwen3VL = "tiny-qwen3vl"
	// PresetSmolVLM256M has the shapes of SmolVLM-256M-Instruct: text 576
	// wide, 30 layers, 9 heads (3 KV), n_ff 1536, vocabulary 49280, context
	// 8192, RoPE base 100000, tied output; vision SigLIP-B/16 (768 wide, 12
	// layers, 12 heads, n_ff 3072), image 512, patch 16, scale factor 4 → 64
	// embeddings per chunk, preproc 2048 (up to 4×4 tiles plus overview).
	PresetSmolVLM256M = "smolvlm-256m"
)

// DefaultSeed is the seed of every preset.
const DefaultSeed = 1

func tinyText(f Family, tied bool) TextConfig {
	return TextConfig{
		Family: f, NEmbd: 64, NLayer: 2, NHead: 4, NHeadKV: 2, NFF: 128, NCtxTrain: 4096,
		RopeFreqBase: 10000, RMSNormEps: 1e-5, TiedOutput: tied,
	}
}

func tinyVision(t ProjectorType) ProjectorConfig {
	c := ProjectorConfig{
		Type: t, NEmbd: 32, NLayer: 2, NHead: 2, NFF: 64, ImageSize: 32, PatchSize: 8,
		OutputEmbd: 64, LayerNormEps: 1e-6, ImageMean: siglipMean, ImageStd: siglipStd,
	}
	switch t {
	case ProjectorMLP:
		c.MLPHidden, c.LayerNormEps, c.ImageMean, c.ImageStd = 64, 1e-5, clipMean, clipStd
	case ProjectorIdefics3:
		c.ScaleFactor, c.PreprocImageSize = 2, 64
	case ProjectorGemma3:
		c.ImageSize, c.ScaleFactor = 64, 4
	case ProjectorQwen2VL, ProjectorQwen25VL, ProjectorQwen25O, ProjectorQwen3VL:
		c.ImageSize, c.ScaleFactor, c.LayerNormEps, c.ImageMean, c.ImageStd = 64, 2, 1e-6, clipMean, clipStd
	}
	return c
}

// tinyPresets names the tiny preset of each projector type.
var tinyPresets = map[ProjectorType]string{
	ProjectorMLP:      PresetTinyMLP,
	ProjectorIdefics3: PresetTinyIdefics3,
	ProjectorGemma3:   PresetTinyGemma3,
	ProjectorQwen2VL:  PresetTinyQwen2VL,
	ProjectorQwen25VL: PresetTinyQwen25VL,
	ProjectorQwen25O:  PresetTinyQwen25O,
	ProjectorQwen3VL:  PresetTinyQwen3VL,
}

var presets = map[string]func() Spec{
	PresetTinyMLP: func() Spec {
		return Spec{Text: tinyText(FamilyLLaVA, false), Projector: tinyVision(ProjectorMLP)}
	},
	PresetTinyIdefics3: func() Spec {
		return Spec{Text: tinyText(FamilySmolVLM, true), Projector: tinyVision(ProjectorIdefics3)}
	},
	PresetTinyGemma3: func() Spec {
		return Spec{Text: tinyText(FamilyGemma3, true), Projector: tinyVision(ProjectorGemma3)}
	},
	PresetTinyQwen2VL: func() Spec {
		return Spec{Text: tinyText(FamilyQwen2VL, false), Projector: tinyVision(ProjectorQwen2VL)}
	},
	PresetTinyQwen25VL: func() Spec {
		return Spec{Text: tinyText(FamilyQwen2VL, false), Projector: tinyVision(ProjectorQwen25VL)}
	},
	PresetTinyQwen25O: func() Spec {
		return Spec{Text: tinyText(FamilyQwen2VL, false), Projector: tinyVision(ProjectorQwen25O)}
	},
	PresetTinyQwen3VL: func() Spec {
		return Spec{Text: tinyText(FamilyQwen2VL, false), Projector: tinyVision(ProjectorQwen3VL)}
	},
	PresetSmolVLM256M: func() Spec {
		return Spec{
			Text: TextConfig{
				Family: FamilySmolVLM, NEmbd: 576, NLayer: 30, NHead: 9, NHeadKV: 3, NFF: 1536,
				NCtxTrain: 8192, RopeFreqBase: 100000, RMSNormEps: 1e-5, VocabSize: 49280, TiedOutput: true,
			},
			Projector: ProjectorConfig{
				Type: ProjectorIdefics3, NEmbd: 768, NLayer: 12, NHead: 12, NFF: 3072,
				ImageSize: 512, PatchSize: 16, ScaleFactor: 4, PreprocImageSize: 2048,
				OutputEmbd: 576, LayerNormEps: 1e-6, ImageMean: siglipMean, ImageStd: siglipStd,
			},
		}
	},
}

// Presets returns the preset names, sorted ("tiny" is an alias of
// "tiny-idefics3").
func Presets() []string {
	names := []string{PresetTiny}
	for n := range presets {
		names = append(names, n)
	}
	slices.Sort(names)
	return names
}

// Preset returns the named spec with Seed DefaultSeed and WeightType F16; the
// caller may change both (or anything else) before writing. An unknown name
// is ErrUnknownPreset.
func Preset(name string) (Spec, error) {
	key := name
	if key == PresetTiny {
		key = PresetTinyIdefics3
	}
	mk, ok := presets[key]
	if !ok {
		return Spec{}, fmt.Errorf("%w %q (known: %v)", ErrUnknownPreset, name, Presets())
	}
	s := mk()
	s.Name, s.Seed, s.WeightType = key, DefaultSeed, gguf.TypeF16
	return s, nil
}
