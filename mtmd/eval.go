package mtmd

import (
	"context"
	"fmt"
	"runtime"
	"time"

	"github.com/vlm-go/vlm"
	"github.com/vlm-go/vlm/llama"
)

// Encoding image chunks and evaluating chunks into a llama context; chunks.go
// makes them.

// Encode runs the vision encoder on image chunk i and returns a copy of its
// embeddings: NTokens rows of the model's input width, row-major. For an
// image Tokenize took from the cache there is nothing to encode: Encode
// returns the cached embeddings.
func (p *Projector) Encode(ctx context.Context, chunks *Chunks, i int) ([]float32, error) {
	embd, _, err := p.embeddings(ctx, chunks, i, true)
	if err != nil {
		return nil, err
	}
	return append([]float32(nil), embd...), nil
}

// embeddings returns chunk i's embeddings (shared, read-only), encoding it
// if they are not known or, with again, whenever the image was prepared for
// these chunks; encoded reports whether it ran the encoder. The image joins
// the chunks' cache once all its chunks are encoded.
func (p *Projector) embeddings(ctx context.Context, chunks *Chunks, i int, again bool) (embd []float32, encoded bool, err error) {
	if chunks == nil || chunks.closed {
		return nil, false, ErrClosed
	}
	if chunks.proj != p {
		return nil, false, fmt.Errorf("chunks of another projector: %w", ErrInvalidArgument)
	}
	if i < 0 || i >= len(chunks.list) {
		return nil, false, fmt.Errorf("chunk %d of %d: %w", i, len(chunks.list), ErrInvalidArgument)
	}
	if chunks.list[i].Type == ChunkText {
		return nil, false, fmt.Errorf("chunk %d is text: %w", i, ErrInvalidArgument)
	}
	if err := p.open(); err != nil {
		return nil, false, err
	}
	src := chunks.src[i]
	known := src.img.e.embd[src.slot]
	if known != nil && (!again || src.img.native == nil) {
		return known, false, nil
	}
	if known == nil && !again && chunks.cache != nil {
		// Another prompt with the same image may have encoded it since
		// these chunks were made (concurrent questions about one picture).
		if ce, ok := chunks.cache.find(src.img.e.key); ok && len(ce.embd) == len(src.img.e.embd) && ce.embd[src.slot] != nil {
			src.img.e.embd[src.slot] = ce.embd[src.slot]
			src.img.left--
			return ce.embd[src.slot], false, nil
		}
	}
	if err := ctx.Err(); err != nil {
		return nil, false, fmt.Errorf("%w (%w)", ErrCancelled, err)
	}
	err = p.useCtx(ctx, func(c *vlm.MtmdContext) (err error) {
		embd, err = c.Encode(src.img.native, src.slot)
		return err
	})
	runtime.KeepAlive(chunks) // its cleanup frees src.img.native
	if err != nil {
		return nil, false, err
	}
	if known != nil {
		return embd, true, nil
	}
	src.img.e.embd[src.slot] = embd
	src.img.left--
	if src.img.left == 0 && chunks.cache != nil {
		chunks.cache.put(src.img.e)
	}
	return embd, true, nil
}

// ImageEmbeddings returns the embeddings of image chunk i: NTokens rows of
// the model's input width, row-major, encoding the chunk only when they are
// not known yet (encoded reports whether it ran the encoder). The slice is
// shared with the image cache: read it, never change it. Like Encode, it
// is for one goroutine at a time per Chunks; it holds the projector for
// the whole encoding, so a batching engine calls it off its decode loop
// and evaluates the result with EvalImageChunk.
func (p *Projector) ImageEmbeddings(ctx context.Context, chunks *Chunks, i int) (embd []float32, encoded bool, err error) {
	return p.embeddings(ctx, chunks, i, false)
}

// EvalImageChunk decodes the embeddings of image chunk ch (from
// ImageEmbeddings) into sequence seq of x at position pos and returns the
// position after it. Non-causal images are decoded in one batch with causal
// attention off, M-RoPE images with their 2-D positions, others in batches
// of the context's BatchSize. It does not hold the projector, so it can run
// while another goroutine encodes.
func (p *Projector) EvalImageChunk(ctx context.Context, x *llama.Context, ch Chunk, embd []float32, pos, seq int32) (int32, error) {
	if ch.Type != ChunkImage {
		return pos, fmt.Errorf("chunk of type %v is not an image: %w", ch.Type, ErrInvalidArgument)
	}
	if x.Model() != p.model {
		return pos, fmt.Errorf("the context belongs to another model than the projector: %w", ErrProjectorMismatch)
	}
	if len(embd) != ch.NTokens*p.nEmbd {
		return pos, fmt.Errorf("%d floats for an image chunk of %d tokens × %d: %w", len(embd), ch.NTokens, p.nEmbd, ErrInvalidArgument)
	}
	if err := decodeImage(ctx, x, embd, ch, pos, seq, x.Options().BatchSize, p.nEmbd, p.nonCausal, p.mrope); err != nil {
		return pos, err
	}
	return pos + int32(ch.NPos), nil
}

// EvalOptions configure Eval.
type EvalOptions struct {
	// Pos is the position of the first chunk (the tokens already in the
	// sequence).
	Pos int32
	// Seq is the sequence id.
	Seq int32
	// BatchSize is the most tokens per decode; 0 means the context's BatchSize.
	BatchSize int
	// Logits requests the logits of the last text token (for sampling).
	Logits bool
	// ImageProgress, if set, is called after each image chunk (an image,
	// or one tile of it) is evaluated — encoded or taken from the cache —
	// with the image chunks done and the total this Eval evaluates. Encoding
	// is the slow part of a prompt on a CPU (seconds per tile).
	ImageProgress func(done, total int)
	// SkipTokens leaves out the prompt's first SkipTokens entries, which
	// are already in the KV cache: text tokens count one each, an image
	// chunk counts its NTokens and is skipped whole or not at all. Pos is
	// then the position after them.
	SkipTokens int
}

// EvalStats report what Eval did.
type EvalStats struct {
	TextTokens    int           // text tokens decoded
	ImageTokens   int           // image embeddings decoded
	ImagesEncoded int           // image chunks (images or tiles) run through the encoder
	ImagesCached  int           // image chunks whose embeddings were known (cache, or encoded before)
	EncodeTime    time.Duration // time in the vision encoder
	DecodeTime    time.Duration // time decoding text and image embeddings
}

// Eval evaluates chunks into the context x: text chunks are decoded in
// batches, image chunks encoded (or taken from the cache) and their
// embeddings decoded. It returns the position after the last chunk. ctx is
// checked between chunks and batches and stops a running decode on the CPU.
func (p *Projector) Eval(ctx context.Context, x *llama.Context, chunks *Chunks, opts EvalOptions) (next int32, stats EvalStats, err error) {
	if chunks == nil || chunks.closed {
		return opts.Pos, stats, ErrClosed
	}
	if chunks.proj != p {
		return opts.Pos, stats, fmt.Errorf("chunks of another projector: %w", ErrInvalidArgument)
	}
	if x.Model() != p.model {
		return opts.Pos, stats, fmt.Errorf("the context belongs to another model than the projector: %w", ErrProjectorMismatch)
	}
	xo := x.Options()
	nBatch := opts.BatchSize
	if nBatch <= 0 || nBatch > xo.BatchSize {
		nBatch = xo.BatchSize
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
	if opts.Seq < 0 || int(opts.Seq) >= xo.Sequences {
		return opts.Pos, stats, fmt.Errorf("sequence %d of a context with %d: %w", opts.Seq, xo.Sequences, ErrInvalidArgument)
	}
	need := int(opts.Pos) - firstOff
	for _, ch := range chunks.list[first:] {
		need += ch.NPos
	}
	if need > xo.ContextSize {
		return opts.Pos, stats, fmt.Errorf("prompt needs %d positions, the context has %d: %w (%w)",
			need, xo.ContextSize, ErrContextFull, llama.ErrPromptTooLong)
	}
	nonCausal, mrope := p.nonCausal, p.mrope
	if nonCausal {
		for _, ch := range chunks.list[first:] {
			if ch.Type != ChunkText && ch.NTokens > xo.UBatchSize {
				return opts.Pos, stats, fmt.Errorf("an image of %d tokens needs UBatchSize ≥ %d, the context has %d: %w",
					ch.NTokens, ch.NTokens, xo.UBatchSize, ErrUBatchTooSmall)
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
	imageTotal, imageDone := 0, 0
	for _, ch := range chunks.list[first:] {
		if ch.Type != ChunkText {
			imageTotal++
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
			stats.DecodeTime += time.Duration(nanotime() - t0)
			stats.TextTokens += len(toks)
			pos += int32(len(toks))
			continue
		}
		if ch.Type == ChunkAudio {
			return pos, stats, ErrAudioUnsupported
		}
		t0 := nanotime()
		embd, encoded, err := p.embeddings(ctx, chunks, i, false)
		if err != nil {
			return pos, stats, err
		}
		if encoded {
			stats.EncodeTime += time.Duration(nanotime() - t0)
			stats.ImagesEncoded++
		} else {
			stats.ImagesCached++
		}
		t0 = nanotime()
		if err := decodeImage(ctx, x, embd, ch, pos, opts.Seq, nBatch, nEmbd, nonCausal, mrope); err != nil {
			return pos, stats, err
		}
		stats.DecodeTime += time.Duration(nanotime() - t0)
		stats.ImageTokens += ch.NTokens
		pos += int32(ch.NPos)
		imageDone++
		if opts.ImageProgress != nil {
			opts.ImageProgress(imageDone, imageTotal)
		}
	}
	return pos, stats, nil
}

// decodeImage decodes an image's embeddings in batches of nBatch, or, for
// a projector with non-causal attention, in one batch whatever nBatch is:
// every token of such an image attends to every other, so a split would
// decode its first tokens without the rest.
func decodeImage(ctx context.Context, x *llama.Context, embd []float32, ch Chunk, pos, seq int32, nBatch, nEmbd int, nonCausal, mrope bool) error {
	n := ch.NTokens
	if nonCausal {
		if xo := x.Options(); n > xo.UBatchSize || n > xo.BatchSize {
			return fmt.Errorf("a non-causal image of %d tokens needs BatchSize and UBatchSize ≥ %d, the context has %d and %d: %w",
				n, n, xo.BatchSize, xo.UBatchSize, ErrUBatchTooSmall)
		}
		nBatch = n
	}
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
