package mtmd

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"strings"

	"github.com/vlm-go/vlm"
	"github.com/vlm-go/vlm/llama"
)

// ChunkType says what a chunk holds: text or an image.
type ChunkType = vlm.ChunkType

// Chunk types.
const (
	ChunkText  = vlm.ChunkText
	ChunkImage = vlm.ChunkImage
	ChunkAudio = vlm.ChunkAudio
)

// Chunk describes one piece of a tokenized prompt.
type Chunk struct {
	Type    ChunkType
	NTokens int           // text tokens, or embeddings an image becomes
	NPos    int           // positions it takes in the context
	Tokens  []llama.Token // the text tokens (text chunks only)
	ImageID string        // the image's ID (image chunks only)
	// Tile numbers the chunks of one image (projectors that cut images
	// into tiles make several chunks per image): 0, 1, ...
	Tile   int
	NX, NY int // grid of image tokens (image chunks only)
}

// Chunks is a prompt split into text and image chunks by Tokenize. It is
// for one goroutine at a time; Close frees what mtmd prepared for it.
type Chunks struct {
	proj    *Projector
	list    []Chunk
	src     []chunkSource      // per chunk of list; zero for text chunks
	native  []*vlm.InputChunks // mtmd's chunks of the images prepared for this prompt
	cache   *ImageCache
	hits    int // images of the prompt found in the cache
	misses  int // images prepared by mtmd
	closed  bool
	cleanup runtime.Cleanup
}

// chunkSource says where an image chunk's embeddings come from: its
// image's entry (from the cache, or filled in as the chunks are encoded).
type chunkSource struct {
	img  *preparedImage
	slot int // index of the chunk in img.e.chunks and img.native
}

// preparedImage is one distinct image of a prompt.
type preparedImage struct {
	e      *imageEntry
	native *vlm.InputChunks // mtmd's chunks of the image; nil when e came from the cache
	left   int              // image chunks not yet encoded
}

// TokenizeOptions configure Tokenize.
type TokenizeOptions struct {
	// AddSpecial adds BOS as the model wants (off when the chat template
	// already wrote it).
	AddSpecial bool
	// ParseSpecial turns special-token strings in the text into tokens
	// (on for rendered chat templates).
	ParseSpecial bool
	// Cache, if set, supplies prepared images: an image found there is not
	// preprocessed, and Eval neither encodes it nor, for an image Tokenize
	// had to prepare, forgets it: once all its chunks are encoded it joins
	// the cache.
	Cache *ImageCache
}

// legacyImageMarker is MTMD_DEFAULT_IMAGE_MARKER: mtmd reads it as a media
// marker too.
const legacyImageMarker = "<__image__>"

// Tokenize splits text at each marker (Marker) and pairs the markers with
// images, in order; mtmd adds the tokens each projector family wants around
// an image. The number of markers must equal len(images).
//
// The result equals mtmd_tokenize of the whole prompt, chunk for chunk and
// token for token, but is built in pieces, as mtmd itself builds it: the
// text between markers is tokenized on its own, and each image becomes the
// chunks mtmd makes of one marker — taken from opts.Cache when the image is
// there, so that a known image is not preprocessed again.
//
// Preprocessing a new image needs the projector, which an encode holds for
// a whole image or tile (seconds on a CPU); ctx bounds that wait
// (ErrCancelled). Text and cached images never wait.
func (p *Projector) Tokenize(ctx context.Context, text string, images []*Image, opts TokenizeOptions) (*Chunks, error) {
	if err := p.open(); err != nil {
		return nil, err
	}
	if p.marker != legacyImageMarker {
		text = strings.ReplaceAll(text, legacyImageMarker, p.marker)
	}
	if n := strings.Count(text, p.marker); n != len(images) {
		return nil, fmt.Errorf("%d markers %q in the text, %d images: %w", n, p.marker, len(images), ErrMarkerMismatch)
	}
	for i, im := range images {
		if im == nil {
			return nil, fmt.Errorf("image %d of %d is nil: %w", i+1, len(images), ErrInvalidImage)
		}
	}
	out := &Chunks{proj: p, cache: opts.Cache}
	ok := false
	defer func() {
		if !ok {
			out.Close()
		}
	}()
	// Each distinct image once: from the cache, or prepared by mtmd.
	prepared := map[string]*preparedImage{}
	for i, im := range images {
		if prepared[im.id] != nil {
			continue
		}
		if opts.Cache != nil {
			if e, hit := opts.Cache.get(imageKey{p.id, im.id}); hit {
				prepared[im.id] = &preparedImage{e: e}
				out.hits++
				continue
			}
		}
		pi, err := p.prepare(ctx, im)
		if err != nil {
			return nil, fmt.Errorf("image %d of %d: %w", i+1, len(images), err)
		}
		out.native = append(out.native, pi.native)
		prepared[im.id] = pi
		out.misses++
	}
	if len(out.native) > 0 {
		out.cleanup = runtime.AddCleanup(out, freeNative, out.native)
	}
	vocab := p.model.Vocab()
	parts := strings.Split(text, p.marker)
	for i, part := range parts {
		if part != "" {
			toks, err := vocab.Tokenize(part, false, opts.ParseSpecial)
			if err != nil {
				return nil, err
			}
			out.addText(toks)
		}
		if i < len(images) {
			out.addImage(prepared[images[i].id])
		}
	}
	if opts.AddSpecial {
		if vocab.AddBOS() {
			bos := Chunk{Type: ChunkText, Tokens: []llama.Token{vocab.BOS()}}
			if len(out.list) > 0 && out.list[0].Type == ChunkText {
				bos.Tokens = append(bos.Tokens, out.list[0].Tokens...)
				out.list[0] = bos
			} else {
				out.list = append([]Chunk{bos}, out.list...)
				out.src = append([]chunkSource{{}}, out.src...)
			}
		}
		if vocab.AddEOS() {
			out.addText([]llama.Token{vocab.EOS()})
		}
	}
	tiles := map[string]int{}
	prevID := ""
	for i := range out.list {
		c := &out.list[i]
		if c.Type == ChunkText {
			c.NTokens, c.NPos = len(c.Tokens), len(c.Tokens)
			continue
		}
		// Tiles of one image follow each other (with text between them);
		// the same image given twice starts again at 0.
		if c.ImageID != prevID {
			tiles[c.ImageID] = 0
		}
		c.Tile = tiles[c.ImageID]
		tiles[c.ImageID]++
		prevID = c.ImageID
	}
	ok = true
	return out, nil
}

func freeNative(list []*vlm.InputChunks) {
	for _, c := range list {
		c.Free()
	}
}

// prepare runs mtmd's tokenizer on one marker and the image: preprocessing
// (resize, tiles) and the chunks it becomes.
func (p *Projector) prepare(ctx context.Context, im *Image) (*preparedImage, error) {
	b, err := vlm.NewBitmap(im.width, im.height, im.rgb, im.id)
	if err != nil {
		return nil, err
	}
	defer b.Free()
	var native *vlm.InputChunks
	err = p.useCtx(ctx, func(c *vlm.MtmdContext) (err error) {
		native, err = c.Tokenize(p.marker, false, true, []*vlm.Bitmap{b})
		return err
	})
	if err != nil {
		if errors.Is(err, vlm.ErrInvalidArgument) {
			return nil, fmt.Errorf("%w: %w", ErrMarkerMismatch, err)
		}
		return nil, err
	}
	e := &imageEntry{key: imageKey{p.id, im.id}}
	pi := &preparedImage{e: e, native: native}
	for i := 0; i < native.Len(); i++ {
		info, err := native.Chunk(i)
		if err != nil {
			native.Free()
			return nil, err
		}
		e.chunks = append(e.chunks, Chunk{
			Type: info.Type, NTokens: info.NTokens, NPos: info.NPos, Tokens: info.Tokens,
			ImageID: info.ID, NX: info.NX, NY: info.NY,
		})
		e.embd = append(e.embd, nil)
		if info.Type != ChunkText {
			pi.left++
		}
	}
	return pi, nil
}

// addText appends tokens to the last chunk if it is text, else as a new
// chunk; the tokens are copied.
func (c *Chunks) addText(toks []llama.Token) {
	if len(toks) == 0 {
		return
	}
	if n := len(c.list); n > 0 && c.list[n-1].Type == ChunkText {
		c.list[n-1].Tokens = append(c.list[n-1].Tokens, toks...)
		return
	}
	c.list = append(c.list, Chunk{Type: ChunkText, Tokens: append([]llama.Token(nil), toks...)})
	c.src = append(c.src, chunkSource{})
}

// addImage appends the chunks of one prepared image.
func (c *Chunks) addImage(pi *preparedImage) {
	for slot, ch := range pi.e.chunks {
		if ch.Type == ChunkText {
			c.addText(ch.Tokens)
			continue
		}
		c.list = append(c.list, ch)
		c.src = append(c.src, chunkSource{img: pi, slot: slot})
	}
}

// Close frees the chunks (idempotent).
func (c *Chunks) Close() error {
	if c == nil || c.closed {
		return nil
	}
	c.closed = true
	c.cleanup.Stop()
	freeNative(c.native)
	c.native = nil
	return nil
}

// Len returns the number of chunks.
func (c *Chunks) Len() int { return len(c.list) }

// Chunk returns chunk i.
func (c *Chunks) Chunk(i int) Chunk { return c.list[i] }

// All returns every chunk.
func (c *Chunks) All() []Chunk { return append([]Chunk(nil), c.list...) }

// NTokens returns the tokens and embeddings of all chunks together.
func (c *Chunks) NTokens() int {
	n := 0
	for _, ch := range c.list {
		n += ch.NTokens
	}
	return n
}

// NPos returns the positions all chunks take together.
func (c *Chunks) NPos() int {
	n := 0
	for _, ch := range c.list {
		n += ch.NPos
	}
	return n
}

// ImageTokens returns the embeddings of the image chunks together.
func (c *Chunks) ImageTokens() int {
	n := 0
	for _, ch := range c.list {
		if ch.Type != ChunkText {
			n += ch.NTokens
		}
	}
	return n
}

// CacheStats returns how many of the prompt's distinct images Tokenize found
// in the cache (hits) and how many it had mtmd prepare (misses).
func (c *Chunks) CacheStats() (hits, misses int) { return c.hits, c.misses }
