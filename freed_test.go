package vlm

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/vlm-go/vlm/internal/testmodel"
)

// TestEveryRootHandleAfterFree calls every method of every root handle type
// after Free: each returns ErrClosed or a zero value; the old code passed
// the freed (nil) pointers to llama.cpp and mtmd, which crashed the process.
func TestEveryRootHandleAfterFree(t *testing.T) {
	m, p := loadNative(t, testmodel.ProjectorMLP)
	x, err := NewContext(m, ContextParams{NCtx: 64, NBatch: 16, Threads: 1})
	require.NoError(t, err)
	b, err := NewBatch(4, 0, 1, 1)
	require.NoError(t, err)
	eb, err := NewBatch(4, m.NEmbdInput(), 1, 1)
	require.NoError(t, err)
	bm, err := NewBitmap(2, 2, make([]byte, 12), "id")
	require.NoError(t, err)
	chunks, err := p.Tokenize(MediaMarker(), true, true, []*Bitmap{bm})
	require.NoError(t, err)
	s, err := NewSamplerChain()
	require.NoError(t, err)
	require.NoError(t, s.AddGreedy())
	require.NoError(t, b.Add(1, 0, true, 0))

	t.Run("Batch", func(t *testing.T) {
		b.Free()
		b.Free()
		assert.Zero(t, b.Len())
		assert.Zero(t, b.Cap())
		b.Clear()
		assert.ErrorIs(t, b.Add(1, 0, true, 0), ErrClosed)
		assert.ErrorIs(t, b.SetPositions(nil), ErrClosed)
		eb.Free()
		assert.ErrorIs(t, eb.SetEmbeddings(make([]float32, m.NEmbdInput()), 0, 0, true), ErrClosed)
		assert.ErrorIs(t, x.Decode(b), ErrClosed)
	})
	t.Run("SamplerChain", func(t *testing.T) {
		s.Free()
		assert.Zero(t, s.Len())
		assert.ErrorIs(t, s.AddGreedy(), ErrClosed)
		assert.ErrorIs(t, s.AddDist(1), ErrClosed)
		assert.ErrorIs(t, s.AddTopK(4), ErrClosed)
		assert.ErrorIs(t, s.AddTopP(0.5, 1), ErrClosed)
		assert.ErrorIs(t, s.AddMinP(0.5, 1), ErrClosed)
		assert.ErrorIs(t, s.AddTypical(0.5, 1), ErrClosed)
		assert.ErrorIs(t, s.AddTemperature(1), ErrClosed)
		assert.ErrorIs(t, s.AddPenalties(8, 1.1, 0, 0), ErrClosed)
		assert.ErrorIs(t, s.AddLogitBias(m.VocabSize(), map[Token]float32{1: 1}), ErrClosed)
		assert.ErrorIs(t, s.AddGrammar(m, `root ::= "a"`, "root"), ErrClosed)
		_, err := s.Sample(x, -1)
		assert.ErrorIs(t, err, ErrClosed)
		assert.ErrorIs(t, s.Accept(1), ErrClosed)
		assert.ErrorIs(t, s.Reset(), ErrClosed)
	})
	t.Run("InputChunks", func(t *testing.T) {
		chunks.Free()
		chunks.Free()
		assert.Zero(t, chunks.Len())
		_, err := chunks.Chunk(0)
		assert.ErrorIs(t, err, ErrClosed)
		_, err = p.Encode(chunks, 0)
		assert.ErrorIs(t, err, ErrClosed)
	})
	t.Run("Bitmap", func(t *testing.T) {
		bm.Free()
		bm.Free()
		nx, ny := bm.Size()
		assert.Zero(t, nx+ny)
		assert.Empty(t, bm.ID())
		_, err := p.Tokenize(MediaMarker(), true, true, []*Bitmap{bm})
		assert.ErrorIs(t, err, ErrInvalidArgument)
	})
	t.Run("MtmdContext", func(t *testing.T) {
		p.Free()
		assert.False(t, p.UseNonCausal())
		assert.False(t, p.UseMRoPE())
		assert.False(t, p.SupportsVision())
		assert.False(t, p.SupportsAudio())
		assert.Zero(t, p.NEmbd())
		_, err := p.Tokenize("x", false, false, nil)
		assert.ErrorIs(t, err, ErrClosed)
	})
	t.Run("LlamaContext", func(t *testing.T) {
		x.Free()
		x.Abort()
		x.ClearAbort()
		assert.Zero(t, x.NCtx()+x.NBatch()+x.NUbatch()+x.NSeqMax())
		x.SetThreads(1, 1)
		x.SetCausalAttention(false)
		assert.ErrorIs(t, x.Decode(b), ErrClosed)
		_, err := x.Logits(-1)
		assert.ErrorIs(t, err, ErrClosed)
		_, err = x.Embeddings(-1)
		assert.ErrorIs(t, err, ErrClosed)
		assert.False(t, x.HasOutput(-1))
		x.Synchronize()
		x.MemoryClear(true)
		assert.False(t, x.MemorySeqRemove(0, 0, -1))
		assert.False(t, x.MemorySeqRemove(-1, 0, -1))
		x.MemorySeqCopy(0, 0, 0, -1)
		x.MemorySeqKeep(0)
		assert.ErrorIs(t, x.MemorySeqAdd(0, 0, -1, 1), ErrClosed)
		assert.EqualValues(t, -1, x.MemorySeqPosMin(0))
		assert.EqualValues(t, -1, x.MemorySeqPosMax(0))
		assert.False(t, x.MemoryCanShift())
		assert.Equal(t, PerfData{}, x.Perf())
		x.PerfReset()
	})
	t.Run("LlamaModel", func(t *testing.T) {
		m.Free()
		assert.Zero(t, m.NEmbd()+m.NEmbdInput()+m.NLayer()+m.NHead()+m.NHeadKV()+m.NCtxTrain()+m.VocabSize())
		assert.Equal(t, 1, m.PositionsPerToken())
		assert.Zero(t, m.NParams()+m.Size())
		assert.Empty(t, m.Description())
		_, ok := m.ChatTemplate("")
		assert.False(t, ok)
		assert.Nil(t, m.Metadata())
		for _, tok := range []Token{m.BOS(), m.EOS(), m.EOT(), m.NL(), m.PAD()} {
			assert.EqualValues(t, -1, tok)
		}
		assert.False(t, m.AddBOS() || m.AddEOS() || m.IsEOG(1) || m.IsControl(1))
		_, err := m.TokenText(1)
		assert.ErrorIs(t, err, ErrClosed)
		_, err = m.Tokenize("x", true, true)
		assert.ErrorIs(t, err, ErrClosed)
		_, err = m.TokenPiece(1, false)
		assert.ErrorIs(t, err, ErrClosed)
		_, err = m.Detokenize([]Token{1}, false, false)
		assert.ErrorIs(t, err, ErrClosed)
		_, err = NewContext(m, ContextParams{})
		assert.ErrorIs(t, err, ErrClosed)
	})
}

// TestEncodeWidthComesFromTheTextModel: Encode sizes its copy by the text
// model's input width, looked up in C at load, not by a caller's argument
// (the old Encode took the width and read past mtmd's buffer when it was
// too large).
func TestEncodeWidthComesFromTheTextModel(t *testing.T) {
	m, p := loadNative(t, testmodel.ProjectorMLP)
	assert.Equal(t, m.NEmbdInput(), p.NEmbd())
	bm, err := NewBitmap(8, 8, make([]byte, 8*8*3), "")
	require.NoError(t, err)
	defer bm.Free()
	chunks, err := p.Tokenize("a "+MediaMarker(), true, true, []*Bitmap{bm})
	require.NoError(t, err)
	defer chunks.Free()
	for i := 0; i < chunks.Len(); i++ {
		info, err := chunks.Chunk(i)
		require.NoError(t, err)
		if info.Type != ChunkImage {
			continue
		}
		embd, err := p.Encode(chunks, i)
		require.NoError(t, err)
		assert.Len(t, embd, info.NTokens*m.NEmbdInput())
		return
	}
	t.Fatal("no image chunk")
}
