//go:build vlmtest

package mtmd

// The reference evaluation the tests compare mtmd's own against: llama.cpp's
// mtmd_helper_eval_chunks, reached through a hook compiled only with the
// build tag vlmtest (set by ./build.sh test).

import (
	"github.com/vlm-go/vlm"
	"github.com/vlm-go/vlm/internal/llamaaccess"
	"github.com/vlm-go/vlm/llama"
)

// HelperEval evaluates the whole prompt into sequence 0 of x with
// llama.cpp's own mtmd_helper_eval_chunks (the prompt tokenized by one
// mtmd_tokenize call) and returns the next position and the last logits:
// the reference Eval is tested against.
func (p *Projector) HelperEval(x *llama.Context, text string, images []*Image, nBatch int) (int32, []float32, error) {
	bitmaps, err := bitmapsOf(images)
	defer freeBitmaps(bitmaps)
	if err != nil {
		return 0, nil, err
	}
	var next int32
	var logits []float32
	err = p.use(func(c *vlm.MtmdContext) error {
		ch, err := c.Tokenize(text, true, true, bitmaps)
		if err != nil {
			return err
		}
		defer ch.Free()
		return llamaaccess.ContextNative(x, func(lc *vlm.LlamaContext) (err error) {
			next, logits, err = c.HelperEvalChunks(lc, ch, 0, 0, nBatch)
			return err
		})
	})
	return next, logits, err
}
