package testmodel_test

import (
	"context"
	"image"
	"image/color"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/vlm-go/vlm/gguf"
	"github.com/vlm-go/vlm/internal/testmodel"
	"github.com/vlm-go/vlm/llama"
	"github.com/vlm-go/vlm/mtmd"
	"github.com/vlm-go/vlm/sampler"
)

func qwenImage(w, h int) *image.NRGBA {
	img := image.NewNRGBA(image.Rect(0, 0, w, h))
	for y := 0; y < h; y++ {
		for x := 0; x < w; x++ {
			img.SetNRGBA(x, y, color.NRGBA{uint8(x * 255 / w), uint8(y * 255 / h), uint8((x*7 + y*13) % 256), 255})
		}
	}
	return img
}

// TestQwen2VLPairRuns loads the tiny pair of each Qwen merger
// (tiny-qwen2vl, tiny-qwen25vl, tiny-qwen25o, tiny-qwen3vl) through
// llama.Load and mtmd.Load — which validate every tensor of these types —
// and runs the M-RoPE path: the projector says so, images tokenize into the
// predicted grid (tokens ≠ positions), a prompt with an image evaluates,
// and greedy generation after it is deterministic.
func TestQwen2VLPairRuns(t *testing.T) {
	for _, pt := range testmodel.QwenProjectorTypes() {
		t.Run(string(pt), func(t *testing.T) {
			assert.Contains(t, gguf.FullyValidatedProjectorTypes(), string(pt))
			testQwenPairRuns(t, pt)
		})
	}
}

func testQwenPairRuns(t *testing.T, pt testmodel.ProjectorType) {
	ctx := context.Background()
	wantType := string(pt)
	if pt == testmodel.ProjectorQwen25O {
		wantType = "qwen2.5vl_merger" // as clip.cpp reads it
	}
	for _, typ := range []gguf.TensorType{gguf.TypeF32, gguf.TypeF16, gguf.TypeQ8_0} {
		t.Run(typ.String(), func(t *testing.T) {
			spec, err := testmodel.TinySpec(pt, typ)
			require.NoError(t, err)
			mpath, ppath := testmodel.TinyPair(t, pt, typ)
			m, err := llama.Load(ctx, mpath, llama.LoadOptions{})
			require.NoError(t, err)
			defer m.Close()
			p, err := mtmd.Load(ctx, ppath, m, mtmd.Options{Threads: 1})
			require.NoError(t, err)
			defer p.Close()
			assert.True(t, p.UsesMRoPE(), "qwen2vl_merger decodes with M-RoPE")
			assert.False(t, p.UsesNonCausal())
			assert.Equal(t, wantType, p.Info().Type)
			assert.Equal(t, uint64(spec.Text.NEmbd), p.Info().OutputEmbd, "the validator derives the output width")
			assert.Equal(t, 16, p.Info().TokensPerImage)

			for _, size := range [][2]int{{64, 64}, {100, 40}, {17, 90}, {32, 32}, {640, 480}, {4000, 3000}} {
				img, err := mtmd.ImageFromGo(qwenImage(size[0], size[1]))
				require.NoError(t, err)
				chunks, err := p.Tokenize(ctx, "<|im_start|>user\n"+p.Marker()+"What?<|im_end|>", []*mtmd.Image{img}, mtmd.TokenizeOptions{ParseSpecial: true})
				require.NoError(t, err)
				nx, ny, err := spec.ImageGrid(size[0], size[1])
				require.NoError(t, err)
				require.Len(t, nx, 1)
				wantTok, err := spec.ImageTokens(size[0], size[1])
				require.NoError(t, err)
				wantPos, err := spec.ImagePositions(size[0], size[1])
				require.NoError(t, err)
				var imgs []mtmd.Chunk
				for _, c := range chunks.All() {
					if c.Type == mtmd.ChunkImage {
						imgs = append(imgs, c)
					}
				}
				require.Len(t, imgs, 1, "%v", size)
				c := imgs[0]
				assert.Equal(t, [2]int{nx[0], ny[0]}, [2]int{c.NX, c.NY}, "%v: token grid", size)
				assert.Equal(t, wantTok, c.NTokens, "%v: tokens", size)
				assert.Equal(t, wantPos, c.NPos, "%v: positions", size)
				assert.Equal(t, max(c.NX, c.NY), c.NPos, "%v", size)
				assert.NotEqual(t, c.NTokens, c.NPos, "%v: M-RoPE positions differ from tokens", size)
				assert.Equal(t, chunks.NPos(), chunks.NTokens()-c.NTokens+c.NPos)
				// <|vision_start|> and <|vision_end|> frame the image as single tokens
				all := chunks.All()
				for i, ch := range all {
					if ch.Type != mtmd.ChunkImage {
						continue
					}
					before, after := all[i-1].Tokens, all[i+1].Tokens
					start, _ := m.Vocab().Tokenize("<|vision_start|>", false, true)
					end, _ := m.Vocab().Tokenize("<|vision_end|>", false, true)
					require.Len(t, start, 1)
					require.Len(t, end, 1)
					assert.Equal(t, start[0], before[len(before)-1])
					assert.Equal(t, end[0], after[0])
				}
				require.NoError(t, chunks.Close())
			}

			gen := func() ([]llama.Token, int32) {
				x, err := m.NewContext(llama.ContextOptions{ContextSize: 512, BatchSize: 64, UBatchSize: 64, Threads: 1})
				require.NoError(t, err)
				defer x.Close()
				img, err := mtmd.ImageFromGo(qwenImage(64, 48))
				require.NoError(t, err)
				prompt := "<|im_start|>user\n" + p.Marker() + "What is in the picture?<|im_end|>\n<|im_start|>assistant\n"
				chunks, err := p.Tokenize(ctx, prompt, []*mtmd.Image{img}, mtmd.TokenizeOptions{AddSpecial: true, ParseSpecial: true})
				require.NoError(t, err)
				defer chunks.Close()
				next, stats, err := p.Eval(ctx, x, chunks, mtmd.EvalOptions{Logits: true})
				require.NoError(t, err)
				assert.Equal(t, int32(chunks.NPos()), next)
				assert.Equal(t, 1, stats.ImagesEncoded)
				smp, err := sampler.New(m, sampler.Config{Temperature: 0})
				require.NoError(t, err)
				defer smp.Close()
				gen := llama.Generate(ctx, x, smp, llama.GenerateOptions{Pos: next, MaxTokens: 6})
				for _, err := range gen.Tokens() {
					require.NoError(t, err)
				}
				res := gen.Result()
				return res.Tokens, res.NextPos
			}
			a, posA := gen()
			b, posB := gen()
			assert.NotEmpty(t, a)
			assert.Equal(t, a, b, "greedy generation after an image is deterministic")
			assert.Equal(t, posA, posB)
		})
	}
}
