package testmodel

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/vlm-go/vlm/gguf"
)

var weightTypes = []gguf.TensorType{gguf.TypeF32, gguf.TypeF16, gguf.TypeQ8_0}

func tinySpecs(t *testing.T) []Spec {
	t.Helper()
	var out []Spec
	for _, p := range AllProjectorTypes() {
		for _, typ := range weightTypes {
			s, err := TinySpec(p, typ)
			require.NoError(t, err)
			out = append(out, s)
		}
	}
	return out
}

func specLabel(s Spec) string { return fmt.Sprintf("%s/%s", s.Name, s.WeightType) }

func TestPresets(t *testing.T) {
	names := Presets()
	assert.Equal(t, []string{"smolvlm-256m", "tiny", "tiny-gemma3", "tiny-idefics3", "tiny-mlp", "tiny-qwen25o", "tiny-qwen25vl", "tiny-qwen2vl", "tiny-qwen3vl"}, names)
	for _, name := range names {
		s, err := Preset(name)
		require.NoError(t, err, name)
		assert.Equal(t, uint64(DefaultSeed), s.Seed)
		for _, typ := range weightTypes {
			s.WeightType = typ
			assert.NoError(t, s.Validate(), "%s %s", name, typ)
		}
	}
	tiny, err := Preset("tiny")
	require.NoError(t, err)
	idefics, err := Preset("tiny-idefics3")
	require.NoError(t, err)
	assert.Equal(t, idefics, tiny, "tiny is an alias of tiny-idefics3")

	_, err = Preset("huge")
	assert.ErrorIs(t, err, ErrUnknownPreset)
	_, err = TinySpec("ldp", gguf.TypeF16)
	assert.ErrorIs(t, err, ErrUnknownPreset)
	qwen, err := TinySpec(ProjectorQwen2VL, gguf.TypeF16)
	require.NoError(t, err)
	assert.Equal(t, PresetTinyQwen2VL, qwen.Name)
	_, err = TinySpec(ProjectorMLP, gguf.TypeQ4_0)
	assert.ErrorIs(t, err, ErrInvalidConfig)
}

func TestSmolVLM256MShapes(t *testing.T) {
	s, err := Preset(PresetSmolVLM256M)
	require.NoError(t, err)
	v, err := s.Vocabulary()
	require.NoError(t, err)
	assert.Len(t, v.Tokens, 49280)
	// SmolVLM-256M-Instruct: 576 wide, 30 layers, 9/3 heads, n_ff 1536,
	// tied embeddings: 49280·576 + 30·(2·576 + 2·576² + 2·576·192 + 3·576·1536) + 576.
	assert.Equal(t, uint64(134588736), s.TextParams())
	chunks, err := s.ImageChunks(512, 512)
	require.NoError(t, err)
	assert.Len(t, chunks, 17, "2048/512 = 4×4 tiles plus the overview")
	for _, c := range chunks {
		assert.Equal(t, 64, c, "(512/16)²/4² embeddings per chunk")
	}
}

func TestVocabulary(t *testing.T) {
	for _, f := range []Family{FamilyLLaVA, FamilySmolVLM, FamilyGemma3, FamilyQwen2VL} {
		t.Run(string(f), func(t *testing.T) {
			for _, size := range []int{0, 5000} {
				c := tinyText(f, true)
				c.VocabSize = size
				v, err := buildVocab(c)
				require.NoError(t, err)
				if size != 0 {
					assert.Len(t, v.Tokens, size)
				} else {
					assert.Len(t, v.Tokens, v.NaturalSize)
				}
				require.Len(t, v.Scores, len(v.Tokens))
				require.Len(t, v.Types, len(v.Tokens))
				seen := map[string]int{}
				for i, tok := range v.Tokens {
					require.NotEmpty(t, tok, "token %d", i)
					if j, dup := seen[tok]; dup {
						t.Fatalf("token %q at %d and %d", tok, j, i)
					}
					seen[tok] = i
				}
				for b := range 256 {
					id, ok := seen[fmt.Sprintf("<0x%02X>", b)]
					require.True(t, ok, "byte token %02X", b)
					assert.Equal(t, TokenByte, v.Types[id])
				}
				for _, s := range []string{spaceMark, "\n", "\n\n", spaceMark + "the", spaceMark + "image"} {
					id, ok := seen[s]
					require.True(t, ok, "%q", s)
					assert.Equal(t, TokenNormal, v.Types[id], "%q", s)
				}
				for _, id := range []int{v.BOS, v.EOS, v.UNK, v.PAD} {
					require.True(t, id >= 0 && id < len(v.Tokens))
				}
				assert.Equal(t, TokenUnknown, v.Types[v.UNK])
				assert.Equal(t, TokenControl, v.Types[v.BOS])
				assert.Equal(t, TokenControl, v.Types[v.EOS])
				assert.NotEqual(t, v.BOS, v.EOS)
				assert.Equal(t, ChatTemplate(f), v.ChatTemplate)
				assert.NotEmpty(t, v.ChatTemplate)
			}
		})
	}
}

func TestFamilyTokens(t *testing.T) {
	need := map[Family][]string{
		FamilySmolVLM: {"<fake_token_around_image>", "<global-img>", "<image>", "<end_of_utterance>", "<|im_start|>", "<row_1_col_1>", "<row_6_col_6>"},
		FamilyGemma3:  {"<start_of_image>", "<end_of_image>", "<start_of_turn>", "<end_of_turn>", "<bos>"},
		FamilyLLaVA:   {"<s>", "</s>", "<image>"},
		FamilyQwen2VL: {"<|vision_start|>", "<|vision_end|>", "<|image_pad|>", "<|im_start|>", "<|im_end|>", "<|endoftext|>"},
	}
	eos := map[Family]string{FamilySmolVLM: "<end_of_utterance>", FamilyGemma3: "<end_of_turn>", FamilyLLaVA: "</s>", FamilyQwen2VL: "<|im_end|>"}
	for f, toks := range need {
		v, err := buildVocab(tinyText(f, true))
		require.NoError(t, err)
		for _, tok := range toks {
			id := v.ID(tok)
			require.GreaterOrEqual(t, id, 0, "%s lacks %q", f, tok)
			assert.Equal(t, TokenControl, v.Types[id], "%s %q must be a control token", f, tok)
		}
		assert.Equal(t, eos[f], v.Tokens[v.EOS])
		assert.Equal(t, -1, v.ID("<__media__>"), "mtmd's marker must stay text")
	}
	// The templates are the corpus' real ones.
	assert.True(t, strings.HasPrefix(ChatTemplate(FamilySmolVLM), "<|im_start|>{% for message in messages %}"))
	assert.Contains(t, ChatTemplate(FamilyGemma3), "<start_of_image>")
	assert.Contains(t, ChatTemplate(FamilyLLaVA), "ASSISTANT:")
	assert.Contains(t, ChatTemplate(FamilyQwen2VL), "<|vision_start|><|image_pad|><|vision_end|>")
	assert.Empty(t, ChatTemplate("nope"))
}

func TestInvalidConfigs(t *testing.T) {
	base := func(p ProjectorType) Spec {
		s, err := TinySpec(p, gguf.TypeQ8_0)
		require.NoError(t, err)
		return s
	}
	cases := []struct {
		name  string
		proj  ProjectorType
		edit  func(*Spec)
		field string
		also  error
	}{
		{"unknown family", ProjectorMLP, func(s *Spec) { s.Text.Family = "opt" }, "text.family", nil},
		{"n_embd not divisible by n_head", ProjectorMLP, func(s *Spec) { s.Text.NHead = 5 }, "text.n_head", nil},
		{"odd head dim", ProjectorMLP, func(s *Spec) { s.Text.NEmbd, s.Text.NHead, s.Projector.OutputEmbd = 96, 32, 96 }, "text.n_head", nil},
		{"n_head not divisible by n_head_kv", ProjectorMLP, func(s *Spec) { s.Text.NHeadKV = 3 }, "text.n_head_kv", nil},
		{"zero layers", ProjectorMLP, func(s *Spec) { s.Text.NLayer = 0 }, "text.n_layer", nil},
		{"negative ctx", ProjectorMLP, func(s *Spec) { s.Text.NCtxTrain = -1 }, "text.n_ctx_train", nil},
		{"zero rope base", ProjectorMLP, func(s *Spec) { s.Text.RopeFreqBase = 0 }, "text.rope_freq_base", nil},
		{"vocab too small", ProjectorMLP, func(s *Spec) { s.Text.VocabSize = 100 }, "text.vocab_size", nil},
		{"q8_0 text rows", ProjectorMLP, func(s *Spec) { s.Text.NFF = 100 }, "blk.0.ffn_down.weight", ErrQ8Rows},
		{"q8_0 text width", ProjectorMLP, func(s *Spec) { s.Text.NEmbd, s.Projector.OutputEmbd = 48, 48 }, "token_embd.weight", ErrQ8Rows},
		{"q8_0 vision width", ProjectorMLP, func(s *Spec) { s.Projector.NEmbd, s.Projector.NHead = 40, 2 }, "v.blk.0.attn_q.weight", ErrQ8Rows},
		{"q8_0 mlp hidden", ProjectorMLP, func(s *Spec) { s.Projector.MLPHidden = 48 }, "mm.2.weight", ErrQ8Rows},
		{"projector output mismatch", ProjectorMLP, func(s *Spec) { s.Projector.OutputEmbd = 128 }, "projector.output_embd", ErrProjectorMismatch},
		{"idefics3 without smolvlm tokens", ProjectorIdefics3, func(s *Spec) { s.Text.Family = FamilyLLaVA }, "text.family", ErrProjectorMismatch},
		{"gemma3 without gemma tokens", ProjectorGemma3, func(s *Spec) { s.Text.Family = FamilySmolVLM }, "text.family", ErrProjectorMismatch},
		{"unknown projector", ProjectorMLP, func(s *Spec) { s.Projector.Type = "resampler" }, "projector.type", nil},
		{"image not divisible by patch", ProjectorMLP, func(s *Spec) { s.Projector.ImageSize = 36 }, "projector.image_size", nil},
		{"vision heads", ProjectorMLP, func(s *Spec) { s.Projector.NHead = 3 }, "projector.n_head", nil},
		{"vision n_ff equals n_embd", ProjectorMLP, func(s *Spec) { s.Projector.NFF = 32 }, "projector.n_ff", nil},
		{"mlp without hidden", ProjectorMLP, func(s *Spec) { s.Projector.MLPHidden = 0 }, "projector.mlp_hidden", nil},
		{"mlp with scale factor", ProjectorMLP, func(s *Spec) { s.Projector.ScaleFactor = 2 }, "projector.scale_factor", nil},
		{"mlp with tiles", ProjectorMLP, func(s *Spec) { s.Projector.PreprocImageSize = 64 }, "projector.preproc_image_size", nil},
		{"idefics3 grid not divisible", ProjectorIdefics3, func(s *Spec) { s.Projector.ScaleFactor = 3 }, "projector.scale_factor", nil},
		{"idefics3 scale factor 1", ProjectorIdefics3, func(s *Spec) { s.Projector.ScaleFactor = 1 }, "projector.scale_factor", nil},
		{"idefics3 preproc below image size", ProjectorIdefics3, func(s *Spec) { s.Projector.PreprocImageSize = 16 }, "projector.preproc_image_size", nil},
		{"idefics3 more tiles than tile tokens", ProjectorIdefics3, func(s *Spec) { s.Projector.PreprocImageSize = 7 * 32 }, "projector.preproc_image_size", nil},
		{"idefics3 with mlp hidden", ProjectorIdefics3, func(s *Spec) { s.Projector.MLPHidden = 64 }, "projector.mlp_hidden", nil},
		{"gemma3 pooling not dividing grid", ProjectorGemma3, func(s *Spec) { s.Projector.ScaleFactor = 3 }, "projector.scale_factor", nil},
		{"gemma3 no pooling kernel", ProjectorGemma3, func(s *Spec) { s.Projector.ScaleFactor = 0 }, "projector.scale_factor", nil},
		{"zero std", ProjectorGemma3, func(s *Spec) { s.Projector.ImageStd[1] = 0 }, "projector.image_std[1]", nil},
		{"zero eps", ProjectorGemma3, func(s *Spec) { s.Projector.LayerNormEps = 0 }, "projector.layer_norm_eps", nil},
		{"bad weight type", ProjectorGemma3, func(s *Spec) { s.WeightType = gguf.TypeQ4_K }, "weight_type", nil},
		{"too large", ProjectorGemma3, func(s *Spec) { s.Text.NEmbd, s.Projector.OutputEmbd = 1<<16, 1<<16 }, "blk.0.attn_q.weight", nil},
		{"vocab above limit", ProjectorGemma3, func(s *Spec) { s.Text.VocabSize = 1<<20 + 1 }, "text.vocab_size", nil},
		{"qwen2vl merger without qwen2vl text", ProjectorQwen2VL, func(s *Spec) { s.Text.Family = FamilySmolVLM }, "text.family", ErrProjectorMismatch},
		{"qwen2vl text without qwen2vl merger", ProjectorMLP, func(s *Spec) { s.Text.Family = FamilyQwen2VL }, "text.family", ErrProjectorMismatch},
		{"qwen2vl merge size 3", ProjectorQwen2VL, func(s *Spec) { s.Projector.ScaleFactor = 3 }, "projector.scale_factor", nil},
		{"qwen2vl odd patch grid", ProjectorQwen2VL, func(s *Spec) { s.Projector.ImageSize = 72 }, "projector.image_size", nil},
		{"qwen2vl vision head not a multiple of 4", ProjectorQwen2VL, func(s *Spec) { s.Projector.NHead = 16 }, "projector.n_head", nil},
		{"qwen2vl text head too small", ProjectorQwen2VL, func(s *Spec) { s.Text.NHead, s.Text.NHeadKV = 16, 16 }, "text.n_head", nil},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			s := base(c.proj)
			c.edit(&s)
			err := s.Validate()
			require.Error(t, err)
			assert.ErrorIs(t, err, ErrInvalidConfig)
			if c.also != nil {
				assert.ErrorIs(t, err, c.also)
			}
			var ce *ConfigError
			require.ErrorAs(t, err, &ce)
			assert.Equal(t, c.field, ce.Field, "%v", err)

			// Nothing is written for an invalid spec.
			dir := t.TempDir()
			_, _, werr := Write(dir, s)
			assert.ErrorIs(t, werr, ErrInvalidConfig)
			entries, _ := os.ReadDir(dir)
			assert.Empty(t, entries)
			assert.Zero(t, s.TextParams())
			_, serr := s.ModelFileSize()
			assert.ErrorIs(t, serr, ErrInvalidConfig)
		})
	}
	// The same shapes are fine in F16 (no Q8_0 row constraint).
	s := base(ProjectorMLP)
	s.Text.NFF = 100
	s.WeightType = gguf.TypeF16
	assert.NoError(t, s.Validate())
}

func readFile(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	require.NoError(t, err)
	return b
}

func TestDeterministic(t *testing.T) {
	for _, s := range tinySpecs(t) {
		t.Run(specLabel(s), func(t *testing.T) {
			m1, p1, err := Write(t.TempDir(), s)
			require.NoError(t, err)
			m2, p2, err := Write(t.TempDir(), s)
			require.NoError(t, err)
			assert.Equal(t, filepath.Base(m1), filepath.Base(m2))
			assert.True(t, bytes.Equal(readFile(t, m1), readFile(t, m2)), "same spec, different model bytes")
			assert.True(t, bytes.Equal(readFile(t, p1), readFile(t, p2)), "same spec, different projector bytes")

			other := s
			other.Seed = s.Seed + 1
			m3, p3, err := Write(t.TempDir(), other)
			require.NoError(t, err)
			assert.NotEqual(t, filepath.Base(m1), filepath.Base(m3), "file names carry the spec hash")
			a, b := readFile(t, m1), readFile(t, m3)
			assert.Equal(t, len(a), len(b))
			assert.False(t, bytes.Equal(a, b), "different seed, same model bytes")
			assert.False(t, bytes.Equal(readFile(t, p1), readFile(t, p3)), "different seed, same projector bytes")
		})
	}
}

func TestHashAndNames(t *testing.T) {
	s, err := Preset("tiny-mlp")
	require.NoError(t, err)
	m, p := s.FileNames()
	assert.Regexp(t, `^tiny-mlp-f16-[0-9a-f]{12}\.gguf$`, m)
	assert.Equal(t, "mmproj-"+m, p)
	h := s.Hash()
	for _, edit := range []func(*Spec){
		func(s *Spec) { s.Seed++ },
		func(s *Spec) { s.WeightType = gguf.TypeQ8_0 },
		func(s *Spec) { s.Text.NLayer++ },
		func(s *Spec) { s.Projector.ImageSize *= 2 },
		func(s *Spec) { s.Name = "other" },
	} {
		o := s
		edit(&o)
		assert.NotEqual(t, h, o.Hash())
	}
	o := s
	o.Name = "a/b c"
	m, _ = o.FileNames()
	assert.True(t, strings.HasPrefix(m, "a_b_c-f16-"), m)
	o.Name = ""
	m, _ = o.FileNames()
	assert.True(t, strings.HasPrefix(m, "custom-f16-"), m)
}

func TestPredictedSizesAndParams(t *testing.T) {
	for _, s := range tinySpecs(t) {
		t.Run(specLabel(s), func(t *testing.T) {
			m, p, err := Write(t.TempDir(), s)
			require.NoError(t, err)
			for _, f := range []struct {
				path    string
				predict func() (int64, error)
				params  uint64
				check   func(*gguf.File) error
			}{
				{m, s.ModelFileSize, s.TextParams(), gguf.ValidateModel},
				{p, s.ProjectorFileSize, s.ProjectorParams(), gguf.ValidateProjector},
			} {
				want, err := f.predict()
				require.NoError(t, err)
				st, err := os.Stat(f.path)
				require.NoError(t, err)
				assert.Equal(t, want, st.Size(), "exact size of %s", filepath.Base(f.path))

				gf, err := gguf.Open(f.path)
				require.NoError(t, err)
				assert.NoError(t, f.check(gf), filepath.Base(f.path))
				assert.Equal(t, f.params, gf.ParamCount())
			}
		})
	}
}

// dataEstimate is an independent estimate of a plan's tensor data: bytes
// per value of each tensor's type (34 per 32 for Q8_0), without padding.
func dataEstimate(p *filePlan) float64 {
	var data float64
	for _, tn := range p.tensors {
		n := float64(tn.elems())
		switch tn.typ {
		case gguf.TypeQ8_0:
			data += n * 34 / 32
		case gguf.TypeF16:
			data += n * 2
		default:
			data += n * 4
		}
	}
	return data
}

func TestQ8SizeWithinOnePercent(t *testing.T) {
	// Written tiny files: metadata as measured (the data offset) plus the
	// data estimate is within 1% of the file size.
	for _, p := range AllProjectorTypes() {
		s, err := TinySpec(p, gguf.TypeQ8_0)
		require.NoError(t, err)
		tp, pp, err := s.plans()
		require.NoError(t, err)
		m, pr, err := Write(t.TempDir(), s)
		require.NoError(t, err)
		for _, c := range []struct {
			path string
			plan *filePlan
		}{{m, tp}, {pr, pp}} {
			f, err := gguf.Open(c.path)
			require.NoError(t, err)
			est := float64(f.DataOffset) + dataEstimate(c.plan)
			assert.InEpsilon(t, est, float64(f.Size), 0.01, "%s: size %d, estimate %.0f", filepath.Base(c.path), f.Size, est)
		}
	}
	// smolvlm-256m, predicted without writing: the exact prediction is
	// within 1% of the data estimate plus the token strings and 64 KiB.
	s, err := Preset(PresetSmolVLM256M)
	require.NoError(t, err)
	s.WeightType = gguf.TypeQ8_0
	tp, pp, err := s.plans()
	require.NoError(t, err)
	v, err := s.Vocabulary()
	require.NoError(t, err)
	tokens := 0.0
	for _, tok := range v.Tokens {
		tokens += float64(8 + len(tok) + 4 + 4) // string, score, type
	}
	ms, err := s.ModelFileSize()
	require.NoError(t, err)
	ps, err := s.ProjectorFileSize()
	require.NoError(t, err)
	assert.InEpsilon(t, dataEstimate(tp)+tokens+65536, float64(ms), 0.01)
	assert.InEpsilon(t, dataEstimate(pp)+65536, float64(ps), 0.01)
}

func TestImageChunks(t *testing.T) {
	get := func(name string) Spec {
		s, err := Preset(name)
		require.NoError(t, err)
		return s
	}
	cases := []struct {
		preset string
		w, h   int
		want   []int
	}{
		{"tiny-mlp", 64, 64, []int{16}},
		{"tiny-mlp", 1, 1000, []int{16}},
		{"tiny-gemma3", 64, 64, []int{4}},
		{"tiny-gemma3", 300, 17, []int{4}},
		{"tiny-idefics3", 64, 64, []int{4, 4, 4, 4, 4}}, // 2×2 tiles + overview
		{"tiny-idefics3", 1, 1, []int{4, 4, 4, 4, 4}},   // scaled up to 64
		{"tiny-idefics3", 100, 40, []int{4, 4, 4}},      // 64×26 → 2×1 tiles
		{"tiny-idefics3", 33, 65, []int{4, 4, 4, 4, 4}}, // 32.5×64 → 64×64: 2×2
		{"tiny-idefics3", 30, 65, []int{4, 4, 4}},       // 29.5×64 → 32×64: 1×2
		{"tiny-idefics3", 200, 31, []int{4, 4, 4}},
		{"smolvlm-256m", 640, 480, append(repeat(64, 12), 64)}, // 2048×1536 → 4×3 tiles
		{"smolvlm-256m", 512, 512, repeat(64, 17)},
		{"tiny-qwen2vl", 64, 64, []int{16}},       // 4×4
		{"tiny-qwen2vl", 100, 40, []int{18}},      // 96×48: 6×3
		{"tiny-qwen2vl", 32, 32, []int{9}},        // 1024 < 2048 pixels: scaled up to 48×48
		{"tiny-qwen2vl", 1, 1, []int{9}},          // ceil(45.25/16)·16 = 48 per side
		{"tiny-qwen2vl", 640, 480, []int{1200}},   // 40×30
		{"tiny-qwen2vl", 4000, 3000, []int{4015}}, // above 4096 tokens: scaled down to 1168×880 (73×55)
	}
	for _, c := range cases {
		got, err := get(c.preset).ImageChunks(c.w, c.h)
		require.NoError(t, err)
		assert.Equal(t, c.want, got, "%s %d×%d", c.preset, c.w, c.h)
		n, err := get(c.preset).ImageTokens(c.w, c.h)
		require.NoError(t, err)
		sum := 0
		for _, x := range c.want {
			sum += x
		}
		assert.Equal(t, sum, n)
	}
	s := get("tiny-idefics3")
	s.Projector.PreprocImageSize = 0
	got, err := s.ImageChunks(640, 480)
	require.NoError(t, err)
	assert.Equal(t, []int{4}, got, "no tiles without preproc_image_size")

	_, err = s.ImageChunks(0, 10)
	assert.Error(t, err)
	s.Projector.Type = "nope"
	_, err = s.ImageChunks(10, 10)
	assert.ErrorIs(t, err, ErrInvalidConfig)
}

func TestImageGridAndPositions(t *testing.T) {
	q, err := Preset(PresetTinyQwen2VL)
	require.NoError(t, err)
	for _, c := range []struct {
		w, h, nx, ny, pos int
	}{{64, 64, 4, 4, 4}, {100, 40, 6, 3, 6}, {17, 90, 2, 7, 7}, {640, 480, 40, 30, 40}} {
		nx, ny, err := q.ImageGrid(c.w, c.h)
		require.NoError(t, err)
		assert.Equal(t, []int{c.nx}, nx, "%d×%d", c.w, c.h)
		assert.Equal(t, []int{c.ny}, ny, "%d×%d", c.w, c.h)
		pos, err := q.ImagePositions(c.w, c.h)
		require.NoError(t, err)
		assert.Equal(t, c.pos, pos, "%d×%d: M-RoPE positions are max(nx, ny)", c.w, c.h)
	}
	// Without M-RoPE every embedding takes one position, in a row.
	s, err := Preset(PresetTinyIdefics3)
	require.NoError(t, err)
	nx, ny, err := s.ImageGrid(64, 64)
	require.NoError(t, err)
	assert.Equal(t, []int{4, 4, 4, 4, 4}, nx)
	assert.Equal(t, []int{1, 1, 1, 1, 1}, ny)
	pos, err := s.ImagePositions(64, 64)
	require.NoError(t, err)
	assert.Equal(t, 20, pos)
}

func TestQwen2VLMetadata(t *testing.T) {
	s, err := TinySpec(ProjectorQwen2VL, gguf.TypeQ8_0)
	require.NoError(t, err)
	m, p, err := Write(t.TempDir(), s)
	require.NoError(t, err)
	f, err := gguf.Open(m)
	require.NoError(t, err)
	assert.Equal(t, "qwen2vl", f.Architecture())
	kv, ok := f.Get("qwen2vl.rope.dimension_sections")
	require.True(t, ok)
	assert.Equal(t, []int32{2, 3, 3, 0}, kv.Value, "head 16: 8 rotation pairs")
	for key, want := range map[string]uint32{"qwen2vl.embedding_length": 64, "qwen2vl.rope.dimension_count": 16, "qwen2vl.block_count": 2} {
		got, ok := f.Uint32(key)
		require.True(t, ok, key)
		assert.Equal(t, want, got, key)
	}
	for name, shape := range map[string][]uint64{"blk.0.attn_q.bias": {64}, "blk.1.attn_k.bias": {32}, "blk.1.attn_v.bias": {32}, "output.weight": {64, uint64(len(mustVocab(t, s).Tokens))}} {
		ti, ok := f.Tensor(name)
		require.True(t, ok, name)
		assert.Equal(t, shape, ti.Shape, name)
	}
	assert.Equal(t, ChatTemplate(FamilyQwen2VL), f.ChatTemplate())

	pf, err := gguf.Open(p)
	require.NoError(t, err)
	for name, want := range map[string]struct {
		typ   gguf.TensorType
		shape []uint64
	}{
		"v.patch_embd.weight":   {gguf.TypeF16, []uint64{8, 8, 3, 32}},
		"v.patch_embd.weight.1": {gguf.TypeF16, []uint64{8, 8, 3, 32}},
		"v.blk.1.attn_q.bias":   {gguf.TypeF32, []uint64{32}},
		"v.post_ln.weight":      {gguf.TypeF32, []uint64{32}},
		"mm.0.weight":           {gguf.TypeQ8_0, []uint64{128, 128}},
		"mm.0.bias":             {gguf.TypeF32, []uint64{128}},
		"mm.2.weight":           {gguf.TypeQ8_0, []uint64{128, 64}},
		"mm.2.bias":             {gguf.TypeF32, []uint64{64}},
	} {
		ti, ok := pf.Tensor(name)
		require.True(t, ok, name)
		assert.Equal(t, want.typ, ti.Type, name)
		assert.Equal(t, want.shape, ti.Shape, name)
	}
	for _, name := range []string{"v.patch_embd.bias", "v.position_embd.weight", "v.pre_ln.weight"} {
		_, ok := pf.Tensor(name)
		assert.False(t, ok, "%s: clip.cpp's qwen2vl graph has none", name)
	}
	got, ok := pf.Uint32("clip.vision.spatial_merge_size")
	require.True(t, ok)
	assert.Equal(t, uint32(2), got)
	info, err := gguf.ProjectorInfo(pf)
	require.NoError(t, err)
	assert.Equal(t, 16, info.TokensPerImage)
	assert.Equal(t, uint32(2), info.MergeFactor)
}

func mustVocab(t *testing.T, s Spec) *Vocab {
	t.Helper()
	v, err := s.Vocabulary()
	require.NoError(t, err)
	return v
}

func repeat(v, n int) []int {
	out := make([]int, n)
	for i := range out {
		out[i] = v
	}
	return out
}

func TestEnsureReusesAndRepairs(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "cache", "models")
	s, err := TinySpec(ProjectorGemma3, gguf.TypeF16)
	require.NoError(t, err)
	m, p, err := Ensure(context.Background(), dir, s)
	require.NoError(t, err)
	want := readFile(t, m)

	// An existing complete file is reused, not rewritten.
	old := time.Now().Add(-time.Hour).Truncate(time.Second)
	require.NoError(t, os.Chtimes(m, old, old))
	m2, p2, err := Ensure(context.Background(), dir, s)
	require.NoError(t, err)
	assert.Equal(t, m, m2)
	assert.Equal(t, p, p2)
	st, err := os.Stat(m)
	require.NoError(t, err)
	assert.True(t, st.ModTime().Equal(old), "Ensure rewrote a complete file")

	// A truncated file is rewritten.
	require.NoError(t, os.Truncate(m, 100))
	_, _, err = Ensure(context.Background(), dir, s)
	require.NoError(t, err)
	assert.Equal(t, want, readFile(t, m))

	// A cancelled context stops a write and leaves no file behind.
	require.NoError(t, os.Remove(p))
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, _, err = Ensure(ctx, dir, s)
	assert.ErrorIs(t, err, context.Canceled)
	_, err = os.Stat(p)
	assert.True(t, os.IsNotExist(err), "partial projector left behind")
	entries, err := os.ReadDir(dir)
	require.NoError(t, err)
	for _, e := range entries {
		assert.False(t, strings.HasPrefix(e.Name(), "."), "temporary file %s left behind", e.Name())
	}
}

func TestEnsureConcurrent(t *testing.T) {
	dir := t.TempDir()
	s, err := TinySpec(ProjectorIdefics3, gguf.TypeQ8_0)
	require.NoError(t, err)
	var wg sync.WaitGroup
	paths := make([][2]string, 4)
	errs := make([]error, len(paths))
	for i := range paths {
		wg.Go(func() {
			paths[i][0], paths[i][1], errs[i] = Ensure(context.Background(), dir, s)
		})
	}
	wg.Wait()
	for i := range paths {
		require.NoError(t, errs[i])
		assert.Equal(t, paths[0], paths[i])
	}
	want, err := s.ModelFileSize()
	require.NoError(t, err)
	st, err := os.Stat(paths[0][0])
	require.NoError(t, err)
	assert.Equal(t, want, st.Size())
	entries, err := os.ReadDir(dir)
	require.NoError(t, err)
	assert.Len(t, entries, 2, "only the two finished files remain")
}

func TestTinyPair(t *testing.T) {
	for _, p := range AllProjectorTypes() {
		m, pr := TinyPair(t, p, gguf.TypeQ8_0)
		for _, path := range []string{m, pr} {
			st, err := os.Stat(path)
			require.NoError(t, err)
			assert.Positive(t, st.Size())
		}
		f, err := gguf.Open(pr)
		require.NoError(t, err)
		typ, _ := f.String("clip.projector_type")
		assert.Equal(t, string(p), typ)
	}
}

func TestMetadata(t *testing.T) {
	s, err := TinySpec(ProjectorIdefics3, gguf.TypeQ8_0)
	require.NoError(t, err)
	m, p, err := Write(t.TempDir(), s)
	require.NoError(t, err)
	f, err := gguf.Open(m)
	require.NoError(t, err)
	v, err := s.Vocabulary()
	require.NoError(t, err)
	toks, ok := f.Strings("tokenizer.ggml.tokens")
	require.True(t, ok)
	assert.Equal(t, v.Tokens, toks)
	for key, want := range map[string]int{
		"tokenizer.ggml.bos_token_id": v.BOS, "tokenizer.ggml.eos_token_id": v.EOS,
		"tokenizer.ggml.unknown_token_id": v.UNK, "tokenizer.ggml.padding_token_id": v.PAD,
		"tokenizer.ggml.eot_token_id": v.EOT,
		"llama.embedding_length":      s.Text.NEmbd, "llama.block_count": s.Text.NLayer,
	} {
		got, ok := f.Uint32(key)
		require.True(t, ok, "%s is a u32", key)
		assert.Equal(t, uint32(want), got, key)
	}
	assert.Equal(t, ChatTemplate(FamilySmolVLM), f.ChatTemplate())
	_, hasOutput := f.Tensor("output.weight")
	assert.False(t, hasOutput, "tied output")
	emb, ok := f.Tensor("token_embd.weight")
	require.True(t, ok)
	assert.Equal(t, gguf.TypeQ8_0, emb.Type)

	pf, err := gguf.Open(p)
	require.NoError(t, err)
	for name, want := range map[string]gguf.TensorType{
		"v.patch_embd.weight": gguf.TypeF16, "v.position_embd.weight": gguf.TypeF32,
		"v.blk.0.attn_q.weight": gguf.TypeQ8_0, "v.blk.0.attn_q.bias": gguf.TypeF32,
		"mm.model.fc.weight": gguf.TypeQ8_0,
	} {
		ti, ok := pf.Tensor(name)
		require.True(t, ok, name)
		assert.Equal(t, want, ti.Type, name)
	}
	for key, want := range map[string]uint32{
		"clip.vision.projector.scale_factor": 2, "clip.vision.preproc_image_size": 64,
		"clip.vision.image_size": 32, "clip.vision.patch_size": 8, "clip.vision.projection_dim": 64,
	} {
		got, ok := pf.Uint32(key)
		require.True(t, ok, "%s is a u32", key)
		assert.Equal(t, want, got, key)
	}
}

// TestWeightsFinite decodes every tensor of the tiny files and checks that
// the values are finite and spread as planned.
func TestWeightsFinite(t *testing.T) {
	for _, s := range tinySpecs(t) {
		m, p, err := Write(t.TempDir(), s)
		require.NoError(t, err)
		for _, path := range []string{m, p} {
			f, err := gguf.Open(path)
			require.NoError(t, err)
			r, err := os.Open(path)
			require.NoError(t, err)
			for _, ti := range f.Tensors {
				raw, err := f.ReadTensor(r, ti.Name)
				require.NoError(t, err)
				var vals []float32
				switch ti.Type {
				case gguf.TypeF32:
					vals = gguf.DecodeF32(raw)
				case gguf.TypeF16:
					vals = gguf.DecodeF16(raw)
				case gguf.TypeQ8_0:
					vals, err = gguf.DecodeQ8_0(raw)
					require.NoError(t, err)
				default:
					t.Fatalf("%s: unexpected type %s", ti.Name, ti.Type)
				}
				var sum, sq float64
				for _, v := range vals {
					require.False(t, v != v || v > 1e4 || v < -1e4, "%s: value %v", ti.Name, v)
					sum += float64(v)
					sq += float64(v) * float64(v)
				}
				n := float64(len(vals))
				if n >= 256 && !strings.Contains(ti.Name, "norm") && !strings.Contains(ti.Name, "ln") {
					mean, rms := sum/n, sq/n
					assert.Less(t, mean*mean, rms/16, "%s: mean %v too large for rms² %v", ti.Name, mean, rms)
					assert.Positive(t, rms, ti.Name)
				}
			}
			require.NoError(t, r.Close())
		}
	}
}

func TestNormalGen(t *testing.T) {
	vals := make([]float32, 1<<16)
	newNormalGen(7, "x").fill(vals, 2)
	var sum, sq float64
	for _, v := range vals {
		sum += float64(v)
		sq += float64(v) * float64(v)
	}
	n := float64(len(vals))
	mean := sum / n
	sd := sq/n - mean*mean
	assert.InDelta(t, 0, mean, 0.05)
	assert.InDelta(t, 4, sd, 0.1, "variance std²")
	again := make([]float32, len(vals))
	newNormalGen(7, "x").fill(again, 2)
	assert.Equal(t, vals, again)
	newNormalGen(7, "y").fill(again, 2)
	assert.NotEqual(t, vals, again)
}

func TestConfigErrorMatching(t *testing.T) {
	err := error(&ConfigError{Field: "f", Reason: "r", Err: ErrQ8Rows})
	assert.True(t, errors.Is(err, ErrInvalidConfig))
	assert.True(t, errors.Is(err, ErrQ8Rows))
	assert.False(t, errors.Is(err, ErrProjectorMismatch))
	assert.Equal(t, "testmodel: invalid config: f: r", err.Error())
}

// TestLargePreset writes smolvlm-256m; it takes seconds and ~250 MB of disk
// per weight type, so it runs only when asked for.
func TestLargePreset(t *testing.T) {
	if os.Getenv("VLM_TEST_LARGE") == "" {
		t.Skip("set VLM_TEST_LARGE=1 to write the smolvlm-256m preset (hundreds of MB)")
	}
	for _, typ := range []gguf.TensorType{gguf.TypeF16, gguf.TypeQ8_0} {
		s, err := Preset(PresetSmolVLM256M)
		require.NoError(t, err)
		s.WeightType = typ
		start := time.Now()
		m, p, err := Write(t.TempDir(), s)
		require.NoError(t, err)
		t.Logf("smolvlm-256m %s written in %v", typ, time.Since(start))
		for _, f := range []struct {
			path    string
			predict func() (int64, error)
			check   func(*gguf.File) error
		}{{m, s.ModelFileSize, gguf.ValidateModel}, {p, s.ProjectorFileSize, gguf.ValidateProjector}} {
			want, err := f.predict()
			require.NoError(t, err)
			st, err := os.Stat(f.path)
			require.NoError(t, err)
			assert.Equal(t, want, st.Size())
			gf, err := gguf.Open(f.path)
			require.NoError(t, err)
			assert.NoError(t, f.check(gf))
		}
	}
}

func TestHashOfInvalidSpec(t *testing.T) {
	s, err := Preset("tiny-mlp")
	require.NoError(t, err)
	s.Projector.ImageMean[0] = float32(math.NaN())
	assert.NotPanics(t, func() { _, _ = s.FileNames() })
	assert.ErrorIs(t, s.Validate(), ErrInvalidConfig)
}
