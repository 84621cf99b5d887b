package llama

import (
	"fmt"
	"runtime"

	"github.com/vlm-go/vlm"
)

// Batch is a set of tokens (or embeddings) for one Decode, each with its
// position, sequences and whether its logits are wanted. Its arrays live in
// C memory that Close frees.
type Batch struct {
	c       *vlm.Batch
	nEmbd   int
	vocab   int
	tokens  []Token // mirror of the token ids, for validation
	cleanup runtime.Cleanup
}

// NewBatch returns a token batch for up to capacity tokens, each in up to
// seqsPerToken sequences (a shared prefix can be decoded once for several),
// for model m (whose vocabulary bounds the token ids).
func (m *Model) NewBatch(capacity, seqsPerToken int) (*Batch, error) {
	info, err := m.Info()
	if err != nil {
		return nil, err
	}
	return newBatch(capacity, 0, seqsPerToken, 1, info.NVocab)
}

// NewBatch returns a token batch for the context's model, for up to
// capacity tokens of one sequence each. It works while the context is open,
// even after the model was closed.
func (x *Context) NewBatch(capacity int) (*Batch, error) {
	return newBatch(capacity, 0, 1, 1, x.model.info.NVocab)
}

// NewEmbeddingBatch returns a batch for up to capacity embeddings of width
// nEmbd; posPerToken is 1, or 4 for M-RoPE models.
func NewEmbeddingBatch(capacity, nEmbd, posPerToken int) (*Batch, error) {
	if nEmbd <= 0 {
		return nil, fmt.Errorf("embedding width %d: %w", nEmbd, ErrInvalidArgument)
	}
	return newBatch(capacity, nEmbd, 1, posPerToken, 0)
}

func newBatch(capacity, nEmbd, seqsPerToken, posPerToken, vocab int) (*Batch, error) {
	c, err := vlm.NewBatch(capacity, nEmbd, seqsPerToken, posPerToken)
	if err != nil {
		return nil, err
	}
	b := &Batch{c: c, nEmbd: nEmbd, vocab: vocab}
	b.cleanup = runtime.AddCleanup(b, func(c *vlm.Batch) { c.Free() }, c)
	return b, nil
}

// Close frees the batch (idempotent).
func (b *Batch) Close() error {
	if b == nil || b.c == nil {
		return nil
	}
	b.cleanup.Stop()
	b.c.Free()
	b.c = nil
	return nil
}

// Len returns the number of tokens in the batch.
func (b *Batch) Len() int {
	if b == nil || b.c == nil {
		return 0
	}
	return b.c.Len()
}

// Cap returns the batch's capacity.
func (b *Batch) Cap() int {
	if b == nil || b.c == nil {
		return 0
	}
	return b.c.Cap()
}

// Clear empties the batch for reuse.
func (b *Batch) Clear() {
	if b == nil || b.c == nil {
		return
	}
	b.c.Clear()
	b.tokens = b.tokens[:0]
}

// Add appends token t at position pos of sequence seq (more sequences may
// follow); logits asks for its output.
func (b *Batch) Add(t Token, pos int32, logits bool, seqs ...int32) error {
	if b == nil || b.c == nil {
		return ErrClosed
	}
	if len(seqs) == 0 {
		seqs = []int32{0}
	}
	if err := b.c.Add(t, pos, logits, seqs...); err != nil {
		return err
	}
	b.tokens = append(b.tokens, t)
	return nil
}

// AddSequence appends tokens at positions pos0, pos0+1, ... of sequence seq,
// with logits for the last one only when lastLogits is set.
func (b *Batch) AddSequence(tokens []Token, pos0, seq int32, lastLogits bool) error {
	for i, t := range tokens {
		if err := b.Add(t, pos0+int32(i), lastLogits && i == len(tokens)-1, seq); err != nil {
			return err
		}
	}
	return nil
}

// SetEmbeddings fills an embedding batch with len(embd)/width embeddings at
// positions pos0, pos0+1, ... of sequence seq, replacing its content.
func (b *Batch) SetEmbeddings(embd []float32, pos0, seq int32) error {
	if b == nil || b.c == nil {
		return ErrClosed
	}
	return b.c.SetEmbeddings(embd, pos0, seq, false)
}

// SetPositions overwrites the positions of the batch's entries; M-RoPE
// batches take 4 planes of Len() values (temporal, y, x, unused).
func (b *Batch) SetPositions(pos []int32) error {
	if b == nil || b.c == nil {
		return ErrClosed
	}
	return b.c.SetPositions(pos)
}
