package mtmd

import (
	"github.com/vlm-go/vlm"
)

// TokenizeWhole is mtmd_tokenize of the whole prompt in one call, the
// reference Tokenize is tested against.
func (p *Projector) TokenizeWhole(text string, images []*Image, addSpecial, parseSpecial bool) ([]Chunk, error) {
	bitmaps, err := bitmapsOf(images)
	defer freeBitmaps(bitmaps)
	if err != nil {
		return nil, err
	}
	var out []Chunk
	err = p.use(func(c *vlm.MtmdContext) error {
		ch, err := c.Tokenize(text, addSpecial, parseSpecial, bitmaps)
		if err != nil {
			return err
		}
		defer ch.Free()
		for i := 0; i < ch.Len(); i++ {
			info, err := ch.Chunk(i)
			if err != nil {
				return err
			}
			out = append(out, Chunk{Type: info.Type, NTokens: info.NTokens, NPos: info.NPos,
				Tokens: info.Tokens, ImageID: info.ID, NX: info.NX, NY: info.NY})
		}
		return nil
	})
	return out, err
}

// bitmapsOf makes mtmd bitmaps of the images (free them with freeBitmaps,
// also on error).
func bitmapsOf(images []*Image) ([]*vlm.Bitmap, error) {
	var out []*vlm.Bitmap
	for _, im := range images {
		b, err := vlm.NewBitmap(im.width, im.height, im.rgb, im.id)
		if err != nil {
			return out, err
		}
		out = append(out, b)
	}
	return out, nil
}

func freeBitmaps(list []*vlm.Bitmap) {
	for _, b := range list {
		b.Free()
	}
}

// HoldNative takes the lock an encode holds for a whole image, as a long
// encode would, until release is called.
func (p *Projector) HoldNative() (release func()) {
	p.lock <- struct{}{}
	return func() { <-p.lock }
}
