//go:build vlmtest

package mtmd_test

import (
	"context"
	"image"
	"image/color"
	"math"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/vlm-go/vlm/gguf"
	"github.com/vlm-go/vlm/internal/testmodel"
	"github.com/vlm-go/vlm/llama"
	"github.com/vlm-go/vlm/mtmd"
)

// TestEvalMatchesMtmdHelper: for every projector type, vlm's evaluation of
// a prompt with two pictures (Tokenize built in pieces, Eval in Go with
// its own image decoding) ends at the same position with the same logits
// as llama.cpp's own mtmd_helper_eval_chunks on a fresh context of the
// same settings, bit for bit — also with a batch smaller than the prompt.
// For an M-RoPE projector (qwen2vl_merger) this checks vlm's 4 position
// planes per image token: a third, wide picture (6×3 tokens) and batches of
// 16, 8 and 4 split images across decodes, mid-row too. (Batches must be
// powers of two: mtmd_helper_decode_image_chunk counts its batches with
// GGML_PAD, a bit mask, and with another n_batch drops an image's last
// tokens — 16 tokens in batches of 5 decode only 15.)
func TestEvalMatchesMtmdHelper(t *testing.T) {
	ctx := context.Background()
	for _, pt := range testmodel.ProjectorTypes() {
		batches := []int{512, 16}
		if pt == testmodel.ProjectorQwen2VL {
			batches = append(batches, 8, 4)
		}
		for _, nBatch := range batches {
			p := loadPair(t, pt, gguf.TypeF16)
			if nBatch < 512 && p.proj.UsesNonCausal() {
				nBatch = 64 // a non-causal image needs its tokens in one batch
			}
			imgs := []*mtmd.Image{mustImage(t, testImage(40, 30, 1)), mustImage(t, testImage(64, 64, 2))}
			if p.proj.UsesMRoPE() {
				imgs = append(imgs, mustImage(t, testImage(100, 40, 3)))
			}
			prompt := "<|im_start|>user\nFirst " + p.proj.Marker() + " then " + p.proj.Marker() + " compared?<|im_end|>\n<|im_start|>assistant\n"
			if len(imgs) == 3 {
				prompt = "<|im_start|>user\nFirst " + p.proj.Marker() + " then " + p.proj.Marker() + " and " + p.proj.Marker() + " compared?<|im_end|>\n<|im_start|>assistant\n"
			}
			opts := llama.ContextOptions{ContextSize: 1024, BatchSize: 512, UBatchSize: 512, Threads: 1, FlashAttn: llama.FlashAttentionOff}

			x1, err := p.model.NewContext(opts)
			require.NoError(t, err)
			defer x1.Close()
			chunks, err := p.proj.Tokenize(ctx, prompt, imgs, mtmd.TokenizeOptions{AddSpecial: true, ParseSpecial: true})
			require.NoError(t, err)
			defer chunks.Close()
			next1, _, err := p.proj.Eval(ctx, x1, chunks, mtmd.EvalOptions{Logits: true, BatchSize: nBatch})
			require.NoError(t, err)
			got, err := x1.Logits(-1)
			require.NoError(t, err)

			x2, err := p.model.NewContext(opts)
			require.NoError(t, err)
			defer x2.Close()
			next2, want, err := p.proj.HelperEval(x2, prompt, imgs, nBatch)
			require.NoError(t, err)

			assert.Equal(t, next2, next1, "%s batch %d: next position", pt, nBatch)
			require.Len(t, got, len(want))
			maxDiff, scale := 0.0, 0.0
			for i := range want {
				maxDiff = math.Max(maxDiff, math.Abs(float64(got[i]-want[i])))
				scale = math.Max(scale, math.Abs(float64(want[i])))
			}
			// Bit for bit: the same decodes in the same order.
			assert.Zero(t, maxDiff, "%s batch %d: logits differ by %g (scale %g)", pt, nBatch, maxDiff, scale)
			t.Logf("%s batch %d: %d positions, max |Δlogit| %g of %g", pt, nBatch, next1, maxDiff, scale)
		}
	}
}

func mustImage(t *testing.T, img interface {
	Bounds() image.Rectangle
	ColorModel() color.Model
	At(x, y int) color.Color
}) *mtmd.Image {
	t.Helper()
	m, err := mtmd.ImageFromGo(img)
	require.NoError(t, err)
	return m
}
