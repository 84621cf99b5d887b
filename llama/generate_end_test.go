package llama_test

import (
	"context"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/vlm-go/vlm/gguf"
	"github.com/vlm-go/vlm/llama"
)

// scriptSampler returns its tokens in turn, then the last one forever.
type scriptSampler struct {
	toks []llama.Token
	n    int
}

func (s *scriptSampler) Sample(*llama.Context, int) (llama.Token, error) {
	t := s.toks[min(s.n, len(s.toks)-1)]
	s.n++
	return t, nil
}

// byteToken returns the byte-fallback token of b ("<0xE2>").
func byteToken(t *testing.T, v *llama.Vocab, b byte) llama.Token {
	t.Helper()
	want := "<0x" + strings.ToUpper(string("0123456789abcdef"[b>>4])+string("0123456789abcdef"[b&15])) + ">"
	for i := 0; i < v.Size(); i++ {
		if s, err := v.Text(llama.Token(i)); err == nil && s == want {
			return llama.Token(i)
		}
	}
	t.Fatalf("no token %s", want)
	return -1
}

// collect runs Generate and returns the text of every yielded piece.
func collect(t *testing.T, x *llama.Context, s llama.TokenSampler, opts llama.GenerateOptions) (string, llama.GenerateResult) {
	t.Helper()
	var got strings.Builder
	gen := llama.Generate(context.Background(), x, s, opts)
	for tok, err := range gen.Tokens() {
		require.NoError(t, err)
		got.WriteString(tok.Text)
	}
	return got.String(), gen.Result()
}

// TestGenerateFlushesHeldBackTextAtEveryEnd: the bytes of a partial UTF-8
// sequence and a possible stop-string start are released when generation
// ends at MaxTokens or at a full context (the old code dropped them there),
// and a full KV cache ends with StopCacheFull, not an error.
func TestGenerateFlushesHeldBackTextAtEveryEnd(t *testing.T) {
	m, _ := loadTiny(t, gguf.TypeF16)
	v := m.Vocab()
	e2 := byteToken(t, v, 0xE2)
	a, err := v.Tokenize("a", false, false)
	require.NoError(t, err)
	aPiece, err := v.Piece(a[len(a)-1], false)
	require.NoError(t, err)
	script := []llama.Token{a[len(a)-1], e2, e2}
	want := string(aPiece) + "\xe2\xe2"

	t.Run("max tokens, partial UTF-8", func(t *testing.T) {
		x := newCtx(t, m, llama.ContextOptions{ContextSize: 256, BatchSize: 32, Threads: 1})
		prefill(t, x, []llama.Token{1, 5, 6})
		text, res := collect(t, x, &scriptSampler{toks: script}, llama.GenerateOptions{Pos: 3, MaxTokens: 3})
		assert.Equal(t, llama.StopMaxTokens, res.Reason)
		assert.Equal(t, want, text)
		assert.Equal(t, want, res.Text)
	})
	t.Run("max tokens, stop-string prefix and partial UTF-8", func(t *testing.T) {
		x := newCtx(t, m, llama.ContextOptions{ContextSize: 256, BatchSize: 32, Threads: 1})
		prefill(t, x, []llama.Token{1, 5, 6})
		stop := string(aPiece) + "\xe2\xe2\xe2never"
		text, res := collect(t, x, &scriptSampler{toks: script}, llama.GenerateOptions{Pos: 3, MaxTokens: 3, Stop: []string{stop}})
		assert.Equal(t, llama.StopMaxTokens, res.Reason)
		assert.Equal(t, want, text)
		assert.Equal(t, want, res.Text)
	})
	t.Run("end of the context", func(t *testing.T) {
		x := newCtx(t, m, llama.ContextOptions{ContextSize: 256, BatchSize: 256, Threads: 1})
		n := x.Options().ContextSize
		prompt := make([]llama.Token, n-3)
		for i := range prompt {
			prompt[i] = llama.Token(1 + i%50)
		}
		prefill(t, x, prompt)
		text, res := collect(t, x, &scriptSampler{toks: script}, llama.GenerateOptions{Pos: int32(len(prompt))})
		assert.Equal(t, llama.StopCacheFull, res.Reason)
		assert.Equal(t, want, text)
		assert.Equal(t, want, res.Text)
	})
	t.Run("KV cache full before the positions run out", func(t *testing.T) {
		// Sequence 1 holds most cells of the shared cache: sequence 0's
		// decode finds no slot long before its positions reach ContextSize.
		x := newCtx(t, m, llama.ContextOptions{ContextSize: 256, BatchSize: 256, Sequences: 2, Threads: 1})
		n := x.Options().ContextSize
		b, err := x.NewBatch(n)
		require.NoError(t, err)
		defer b.Close()
		for i := 0; i < n-4; i++ {
			require.NoError(t, b.Add(llama.Token(1+i%50), int32(i), false, 1))
		}
		require.NoError(t, b.Add(1, 0, true, 0))
		require.NoError(t, x.Decode(context.Background(), b))
		text, res := collect(t, x, &scriptSampler{toks: script}, llama.GenerateOptions{Pos: 1, Seq: 0})
		assert.Equal(t, llama.StopCacheFull, res.Reason)
		assert.Less(t, int(res.NextPos), n-4, "ended by the cache, not by the positions")
		assert.Equal(t, want, text[:min(len(text), len(want))])
		assert.True(t, strings.HasSuffix(res.Text, "\xe2"), "held-back bytes flushed: %q", res.Text)
		assert.Equal(t, text, res.Text)
	})
}
