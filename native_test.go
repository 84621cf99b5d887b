package vlm

import (
	"errors"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/vlm-go/vlm/gguf"
	"github.com/vlm-go/vlm/internal/testmodel"
)

// The llama and mtmd packages test the binding through their APIs; these
// tests cover what they do not reach.

func loadNative(t *testing.T, pt testmodel.ProjectorType) (*LlamaModel, *MtmdContext) {
	t.Helper()
	mp, pp := testmodel.TinyPair(t, pt, gguf.TypeF16)
	m, err := LoadModel(mp, ModelParams{})
	require.NoError(t, err)
	t.Cleanup(m.Free)
	p, err := LoadProjector(pp, m, ProjectorParams{Threads: 2})
	require.NoError(t, err)
	t.Cleanup(p.Free)
	return m, p
}

func TestBuiltinChatTemplates(t *testing.T) {
	names := BuiltinChatTemplates()
	assert.Contains(t, names, "chatml")
	out, err := ApplyBuiltinChatTemplate("chatml", []ChatMessage{{Role: "user", Content: "hi <__media__>"}}, true)
	require.NoError(t, err)
	assert.Equal(t, "<|im_start|>user\nhi <__media__><|im_end|>\n<|im_start|>assistant\n", out)
	_, err = ApplyBuiltinChatTemplate("no-such-template", nil, true)
	assert.ErrorIs(t, err, ErrInvalidArgument)
}

func TestModelAccessors(t *testing.T) {
	m, p := loadNative(t, testmodel.ProjectorIdefics3)
	tmpl, ok := m.ChatTemplate("")
	assert.True(t, ok)
	assert.Contains(t, tmpl, "{%")
	_, ok = m.ChatTemplate("no-such-name")
	assert.False(t, ok)
	for _, tok := range []Token{m.EOT(), m.NL(), m.PAD()} {
		assert.GreaterOrEqual(t, tok, Token(-1))
		assert.Less(t, int(tok), m.VocabSize())
	}
	assert.False(t, m.AddEOS())
	assert.Equal(t, 1, m.PositionsPerToken())
	assert.True(t, p.SupportsVision())
	assert.False(t, p.SupportsAudio())
	assert.False(t, p.UseMRoPE())
	assert.Equal(t, "<__media__>", MediaMarker())
}

func TestBitmapsAndChunks(t *testing.T) {
	_, p := loadNative(t, testmodel.ProjectorMLP)
	rgb := make([]byte, 8*4*3)
	b, err := NewBitmap(8, 4, rgb, "img-1")
	require.NoError(t, err)
	defer b.Free()
	w, h := b.Size()
	assert.Equal(t, [2]int{8, 4}, [2]int{w, h})
	assert.Equal(t, "img-1", b.ID())
	_, err = NewBitmap(0, 4, nil, "")
	assert.ErrorIs(t, err, ErrInvalidArgument)
	_, err = NewBitmap(2, 2, rgb, "")
	assert.ErrorIs(t, err, ErrInvalidArgument)

	chunks, err := p.Tokenize("look "+MediaMarker()+" here", true, true, []*Bitmap{b})
	require.NoError(t, err)
	defer chunks.Free()
	require.Equal(t, 3, chunks.Len())
	info, err := chunks.Chunk(1)
	require.NoError(t, err)
	assert.Equal(t, "image", info.Type.String())
	assert.Equal(t, "img-1", info.ID)
	assert.Equal(t, "text", ChunkText.String())
	assert.Equal(t, "audio", ChunkAudio.String())
	assert.Equal(t, "ChunkType(42)", ChunkType(42).String())
	_, err = chunks.Chunk(3)
	assert.ErrorIs(t, err, ErrInvalidArgument)
	_, err = p.Encode(chunks, 0)
	assert.ErrorIs(t, err, ErrInvalidArgument, "text chunks do not encode")

	_, err = p.Tokenize(MediaMarker()+MediaMarker(), false, false, []*Bitmap{b})
	var ce *CodeError
	require.ErrorAs(t, err, &ce)
	assert.Equal(t, "mtmd_tokenize", ce.Func)
	assert.Contains(t, ce.Error(), "mtmd_tokenize returned 1")
}

func TestContextNativeOperations(t *testing.T) {
	m, _ := loadNative(t, testmodel.ProjectorMLP)
	x, err := NewContext(m, ContextParams{NCtx: 256, NBatch: 256, NSeqMax: 2, Threads: 2, KVUnified: true})
	require.NoError(t, err)
	defer x.Free()
	b, err := NewBatch(64, 0, 1, 1)
	require.NoError(t, err)
	defer b.Free()
	assert.Equal(t, 64, b.Cap())
	for i := 0; i < 64; i++ {
		require.NoError(t, b.Add(Token(i%50+1), int32(i), i == 63, 0))
	}
	assert.Equal(t, 64, b.Len())
	require.NoError(t, b.SetPositions(seq(64, 10)))
	assert.ErrorIs(t, b.SetPositions(seq(3, 0)), ErrInvalidArgument)
	require.NoError(t, x.Decode(b))
	x.Synchronize()
	assert.EqualValues(t, 10, x.MemorySeqPosMin(0))
	assert.EqualValues(t, 73, x.MemorySeqPosMax(0))
	assert.EqualValues(t, -1, x.MemorySeqPosMin(5), "an id the context lacks is not passed to llama.cpp")
	assert.ErrorIs(t, x.MemorySeqAdd(9, 0, -1, 1), ErrInvalidArgument)
	x.MemorySeqKeep(9) // ignored, not an abort
	x.MemorySeqCopy(0, 9, 0, -1)
	assert.False(t, x.MemorySeqRemove(9, 0, -1))

	// Abort stops the next decode; ClearAbort lets decoding resume.
	x.MemoryClear(true)
	x.Abort()
	err = x.Decode(b)
	assert.ErrorIs(t, err, ErrCancelled)
	x.ClearAbort()
	x.MemoryClear(true)
	require.NoError(t, x.Decode(b))

	eb, err := NewBatch(4, m.NEmbdInput()+1, 1, 1)
	require.NoError(t, err)
	defer eb.Free()
	require.NoError(t, eb.SetEmbeddings(make([]float32, 2*(m.NEmbdInput()+1)), 0, 0, true))
	assert.ErrorIs(t, x.Decode(eb), ErrInvalidArgument, "embeddings of the wrong width")
	assert.ErrorIs(t, eb.Add(1, 0, false, 0), ErrInvalidArgument)
	assert.ErrorIs(t, b.SetEmbeddings([]float32{1}, 0, 0, false), ErrInvalidArgument)
	_, err = NewBatch(0, 0, 1, 1)
	assert.ErrorIs(t, err, ErrInvalidArgument)
}

func seq(n int, from int32) []int32 {
	out := make([]int32, n)
	for i := range out {
		out[i] = from + int32(i)
	}
	return out
}

func TestFreedHandles(t *testing.T) {
	m, p := loadNative(t, testmodel.ProjectorMLP)
	p.Free()
	p.Free()
	assert.False(t, p.Valid())
	_, err := p.Tokenize("x", false, false, nil)
	assert.ErrorIs(t, err, ErrClosed)
	m.Free()
	m.Free()
	assert.False(t, m.Valid())
	_, err = NewContext(m, ContextParams{})
	assert.ErrorIs(t, err, ErrClosed)
	_, err = LoadProjector("x", m, ProjectorParams{})
	assert.ErrorIs(t, err, ErrClosed)
	s, err := NewSamplerChain()
	require.NoError(t, err)
	s.Free()
	s.Free()
	assert.False(t, s.Valid())
	assert.ErrorIs(t, s.AddGrammar(m, "root ::= \"a\"", "root"), ErrClosed)
	var nilCtx *LlamaContext
	nilCtx.Free()
	assert.False(t, nilCtx.Valid())
	var nilBatch *Batch
	nilBatch.Free()
	_, err = LoadModel("/nonexistent.gguf", ModelParams{})
	assert.Error(t, err)
	assert.True(t, errors.Is(Quantize("/nonexistent.gguf", t.TempDir()+"/x.gguf", FileTypeQ8_0, 1), ErrLoad))
}
