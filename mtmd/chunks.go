package mtmd

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"strings"
	"sync"

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

// Chunks is a prompt split into text and image chunks by Tokenize.
type Chunks struct {
	proj    *Projector
	c       *vlm.InputChunks
	list    []Chunk
	cleanup runtime.Cleanup
}

// TokenizeOptions configure Tokenize.
type TokenizeOptions struct {
	// AddSpecial adds BOS as the model wants (off when the chat template
	// already wrote it).
	AddSpecial bool
	// ParseSpecial turns special-token strings in the text into tokens
	// (on for rendered chat templates).
	ParseSpecial bool
}

// Tokenize splits text at each marker (Marker) and pairs the markers with
// images, in order; mtmd adds the tokens each projector family wants around
// an image. The number of markers must equal len(images).
func (p *Projector) Tokenize(text string, images []*Image, opts TokenizeOptions) (*Chunks, error) {
	if n := strings.Count(text, p.marker); n != len(images) {
		return nil, fmt.Errorf("%d markers %q in the text, %d images: %w", n, p.marker, len(images), ErrMarkerMismatch)
	}
	bitmaps := make([]*vlm.Bitmap, 0, len(images))
	defer func() {
		for _, b := range bitmaps {
			b.Free()
		}
	}()
	for i, im := range images {
		if im == nil {
			return nil, fmt.Errorf("image %d is nil: %w", i, ErrInvalidImage)
		}
		b, err := vlm.NewBitmap(im.width, im.height, im.rgb, im.id)
		if err != nil {
			return nil, fmt.Errorf("image %d: %w", i, err)
		}
		bitmaps = append(bitmaps, b)
	}
	var ch *vlm.InputChunks
	err := p.use(func(c *vlm.MtmdContext) (err error) {
		ch, err = c.Tokenize(text, opts.AddSpecial, opts.ParseSpecial, bitmaps)
		return err
	})
	if err != nil {
		if errors.Is(err, vlm.ErrInvalidArgument) {
			return nil, fmt.Errorf("%w: %w", ErrMarkerMismatch, err)
		}
		return nil, err
	}
	out := &Chunks{proj: p, c: ch}
	out.cleanup = runtime.AddCleanup(out, func(c *vlm.InputChunks) { c.Free() }, ch)
	tiles := map[string]int{}
	prevID := ""
	for i := 0; i < ch.Len(); i++ {
		info, err := ch.Chunk(i)
		if err != nil {
			out.Close()
			return nil, err
		}
		c := Chunk{
			Type: info.Type, NTokens: info.NTokens, NPos: info.NPos, Tokens: info.Tokens,
			ImageID: info.ID, NX: info.NX, NY: info.NY,
		}
		if c.Type != ChunkText {
			// Tiles of one image follow each other (with text between
			// them); the same image given twice starts again at 0.
			if c.ImageID != prevID {
				tiles[c.ImageID] = 0
			}
			c.Tile = tiles[c.ImageID]
			tiles[c.ImageID]++
			prevID = c.ImageID
		}
		out.list = append(out.list, c)
	}
	return out, nil
}

// Close frees the chunks (idempotent).
func (c *Chunks) Close() error {
	if c == nil || c.c == nil {
		return nil
	}
	c.cleanup.Stop()
	c.c.Free()
	c.c = nil
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

// Encode runs the vision encoder on image chunk i and returns a copy of its
// embeddings: NTokens rows of the model's input width, row-major.
func (p *Projector) Encode(ctx context.Context, chunks *Chunks, i int) ([]float32, error) {
	if chunks == nil || chunks.c == nil {
		return nil, ErrClosed
	}
	if chunks.proj != p {
		return nil, fmt.Errorf("chunks of another projector: %w", ErrInvalidArgument)
	}
	if i < 0 || i >= len(chunks.list) {
		return nil, fmt.Errorf("chunk %d of %d: %w", i, len(chunks.list), ErrInvalidArgument)
	}
	if chunks.list[i].Type == ChunkText {
		return nil, fmt.Errorf("chunk %d is text: %w", i, ErrInvalidArgument)
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("%w (%w)", ErrCancelled, err)
	}
	var embd []float32
	err := p.use(func(c *vlm.MtmdContext) (err error) {
		embd, err = c.Encode(chunks.c, i, p.nEmbd)
		return err
	})
	return embd, err
}

// EmbeddingCache keeps encoded images (each tile) by image ID, so an image seen again
// (e.g. in a later turn of a chat) is not encoded again. It is safe for
// concurrent use. The zero value is an unbounded cache; use NewEmbeddingCache
// for a bounded one.
type EmbeddingCache struct {
	mu       sync.Mutex
	entries  map[string][]float32
	order    []string
	maxItems int
	hits     int
	misses   int
}

// NewEmbeddingCache returns a cache holding at most maxItems images (the
// oldest is dropped first); maxItems ≤ 0 means unbounded.
func NewEmbeddingCache(maxItems int) *EmbeddingCache { return &EmbeddingCache{maxItems: maxItems} }

func (c *EmbeddingCache) get(id string) ([]float32, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.entries[id]
	if ok {
		c.hits++
	} else {
		c.misses++
	}
	return e, ok
}

func (c *EmbeddingCache) put(id string, embd []float32) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.entries == nil {
		c.entries = map[string][]float32{}
	}
	if _, ok := c.entries[id]; ok {
		return
	}
	c.entries[id] = embd
	c.order = append(c.order, id)
	if c.maxItems > 0 && len(c.order) > c.maxItems {
		delete(c.entries, c.order[0])
		c.order = c.order[1:]
	}
}

// Stats returns how many lookups found an image and how many did not.
func (c *EmbeddingCache) Stats() (hits, misses int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.hits, c.misses
}

// Len returns the number of cached images.
func (c *EmbeddingCache) Len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.entries)
}

// EvalOptions configure Eval.
type EvalOptions struct {
	// Pos is the position of the first chunk (the tokens already in the
	// sequence).
	Pos int32
	// Seq is the sequence id.
	Seq int32
	// NBatch is the most tokens per decode; 0 means the context's NBatch.
	NBatch int
	// Logits requests the logits of the last text token (for sampling).
	Logits bool
	// Cache, if set, supplies and keeps image embeddings by image ID.
	Cache *EmbeddingCache
	// SkipTokens leaves out the prompt's first SkipTokens entries, which
	// are already in the KV cache: text tokens count one each, an image
	// chunk counts its NTokens and is skipped whole or not at all. Pos is
	// then the position after them.
	SkipTokens int
}

// EvalStats report what Eval did.
type EvalStats struct {
	TextTokens    int // text tokens decoded
	ImageTokens   int // image embeddings decoded
	ImagesEncoded int // image chunks (images or tiles) run through the encoder
	ImagesCached  int // image chunks taken from the cache
	EncodeNanos   int64
	DecodeNanos   int64
}

// Eval evaluates chunks into the context x: text chunks are decoded in
// batches, image chunks encoded (or taken from the cache) and their
// embeddings decoded. It returns the position after the last chunk. ctx is
// checked between chunks and batches and stops a running decode on the CPU.
func (p *Projector) Eval(ctx context.Context, x *llama.Context, chunks *Chunks, opts EvalOptions) (next int32, stats EvalStats, err error) {
	if chunks == nil || chunks.c == nil {
		return opts.Pos, stats, ErrClosed
	}
	if chunks.proj != p {
		return opts.Pos, stats, fmt.Errorf("chunks of another projector: %w", ErrInvalidArgument)
	}
	if x.Model() != p.model {
		return opts.Pos, stats, fmt.Errorf("the context belongs to another model than the projector: %w", ErrProjectorMismatch)
	}
	xo := x.Options()
	nBatch := opts.NBatch
	if nBatch <= 0 || nBatch > xo.NBatch {
		nBatch = xo.NBatch
	}
	// Where evaluation starts: chunk first, token offset within it.
	first, firstOff, left := 0, 0, opts.SkipTokens
	if left < 0 || left > chunks.NTokens() {
		return opts.Pos, stats, fmt.Errorf("skip %d of %d tokens: %w", left, chunks.NTokens(), ErrInvalidArgument)
	}
	for first < len(chunks.list) && left > 0 {
		ch := chunks.list[first]
		if left < ch.NTokens {
			if ch.Type != ChunkText {
				return opts.Pos, stats, fmt.Errorf("skip %d tokens ends inside image chunk %d: %w", opts.SkipTokens, first, ErrInvalidArgument)
			}
			firstOff = left
			break
		}
		left -= ch.NTokens
		first++
	}
	if opts.Seq < 0 || int(opts.Seq) >= xo.NSeqMax {
		return opts.Pos, stats, fmt.Errorf("sequence %d of a context with %d: %w", opts.Seq, xo.NSeqMax, ErrInvalidArgument)
	}
	need := int(opts.Pos) - firstOff
	for _, ch := range chunks.list[first:] {
		need += ch.NPos
	}
	if need > xo.NCtx {
		return opts.Pos, stats, fmt.Errorf("prompt needs %d positions, the context has %d: %w (%w)",
			need, xo.NCtx, ErrContextFull, llama.ErrPromptTooLong)
	}
	nonCausal := p.UsesNonCausal()
	mrope := p.UsesMRoPE()
	if nonCausal {
		for _, ch := range chunks.list[first:] {
			if ch.Type != ChunkText && ch.NTokens > xo.NUbatch {
				return opts.Pos, stats, fmt.Errorf("an image of %d tokens needs NUbatch ≥ %d, the context has %d: %w",
					ch.NTokens, ch.NTokens, xo.NUbatch, ErrUbatchTooSmall)
			}
		}
	}
	nEmbd := p.nEmbd
	pos := opts.Pos
	lastText := -1
	for i := len(chunks.list) - 1; i >= first; i-- {
		if chunks.list[i].Type == ChunkText {
			lastText = i
			break
		}
	}
	var tokBatch *llama.Batch
	defer func() { tokBatch.Close() }()
	for i := first; i < len(chunks.list); i++ {
		if err := ctx.Err(); err != nil {
			return pos, stats, fmt.Errorf("%w (%w)", ErrCancelled, err)
		}
		ch := chunks.list[i]
		if ch.Type == ChunkText {
			if tokBatch == nil {
				if tokBatch, err = x.NewBatch(nBatch); err != nil {
					return pos, stats, err
				}
			}
			t0 := nanotime()
			toks := ch.Tokens
			if i == first {
				toks = toks[firstOff:]
			}
			for off := 0; off < len(toks); off += nBatch {
				end := min(off+nBatch, len(toks))
				tokBatch.Clear()
				last := opts.Logits && i == lastText && end == len(toks)
				if err := tokBatch.AddSequence(toks[off:end], pos+int32(off), opts.Seq, last); err != nil {
					return pos, stats, err
				}
				if err := x.Decode(ctx, tokBatch); err != nil {
					return pos + int32(off), stats, err
				}
			}
			stats.DecodeNanos += nanotime() - t0
			stats.TextTokens += len(toks)
			pos += int32(len(toks))
			continue
		}
		if ch.Type == ChunkAudio {
			return pos, stats, ErrAudioUnsupported
		}
		embd, ok := []float32(nil), false
		key := fmt.Sprintf("%s/%d", ch.ImageID, ch.Tile)
		if opts.Cache != nil && ch.ImageID != "" {
			embd, ok = opts.Cache.get(key)
			if ok && len(embd) != ch.NTokens*nEmbd {
				ok = false
			}
		}
		if ok {
			stats.ImagesCached++
		} else {
			t0 := nanotime()
			embd, err = p.Encode(ctx, chunks, i)
			if err != nil {
				return pos, stats, err
			}
			stats.EncodeNanos += nanotime() - t0
			stats.ImagesEncoded++
			if opts.Cache != nil && ch.ImageID != "" {
				opts.Cache.put(key, embd)
			}
		}
		t0 := nanotime()
		if err := decodeImage(ctx, x, embd, ch, pos, opts.Seq, nBatch, nEmbd, nonCausal, mrope); err != nil {
			return pos, stats, err
		}
		stats.DecodeNanos += nanotime() - t0
		stats.ImageTokens += ch.NTokens
		pos += int32(ch.NPos)
	}
	return pos, stats, nil
}

// decodeImage decodes an image's embeddings in batches of nBatch.
func decodeImage(ctx context.Context, x *llama.Context, embd []float32, ch Chunk, pos, seq int32, nBatch, nEmbd int, nonCausal, mrope bool) error {
	n := ch.NTokens
	posPer := 1
	var planes []int32
	if mrope {
		posPer = 4
		planes = make([]int32, 4*n)
		for y := 0; y < ch.NY; y++ {
			for xx := 0; xx < ch.NX; xx++ {
				i := y*ch.NX + xx
				if i >= n {
					break
				}
				planes[i] = pos
				planes[i+n] = pos + int32(y)
				planes[i+2*n] = pos + int32(xx)
				planes[i+3*n] = 0
			}
		}
	}
	b, err := llama.NewEmbeddingBatch(min(nBatch, n), nEmbd, posPer)
	if err != nil {
		return err
	}
	defer b.Close()
	if nonCausal {
		if err := x.SetCausalAttention(false); err != nil {
			return err
		}
		defer x.SetCausalAttention(true) //nolint:errcheck // restored on the same context
	}
	for off := 0; off < n; off += nBatch {
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("%w (%w)", ErrCancelled, err)
		}
		end := min(off+nBatch, n)
		if err := b.SetEmbeddings(embd[off*nEmbd:end*nEmbd], pos+int32(off), seq); err != nil {
			return err
		}
		if mrope {
			k := end - off
			view := make([]int32, 4*k)
			for d := 0; d < 4; d++ {
				copy(view[d*k:(d+1)*k], planes[d*n+off:d*n+end])
			}
			if err := b.SetPositions(view); err != nil {
				return err
			}
		}
		if err := x.Decode(ctx, b); err != nil {
			return err
		}
	}
	return nil
}
