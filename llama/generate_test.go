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

// argmaxSampler is a greedy TokenSampler written against the public API,
// so Generate is checked without the sampler package.
type argmaxSampler struct{}

func (argmaxSampler) Sample(x *llama.Context, i int) (llama.Token, error) {
	logits, err := x.Logits(i)
	if err != nil {
		return -1, err
	}
	best := 0
	for j, v := range logits {
		if v > logits[best] {
			best = j
		}
	}
	return llama.Token(best), nil
}

func prefill(t testing.TB, x *llama.Context, prompt []llama.Token) {
	t.Helper()
	b, err := x.NewBatch(len(prompt))
	require.NoError(t, err)
	defer b.Close()
	require.NoError(t, b.AddSequence(prompt, 0, 0, true))
	require.NoError(t, x.Decode(context.Background(), b))
}

func TestGenerateEqualsManualGreedy(t *testing.T) {
	m, _ := loadTiny(t, gguf.TypeF16)
	prompt, err := m.Vocab().Tokenize("the quick brown fox", true, false)
	require.NoError(t, err)
	want, _ := greedy(t, newCtx(t, m, llama.ContextOptions{ContextSize: 128}), prompt, 12)

	x := newCtx(t, m, llama.ContextOptions{ContextSize: 128})
	prefill(t, x, prompt)
	var res llama.GenerateResult
	var got []llama.Token
	var text strings.Builder
	gen := llama.Generate(context.Background(), x, argmaxSampler{}, llama.GenerateOptions{
		Pos: int32(len(prompt)), MaxTokens: 12,
	})
	for tok, err := range gen.Tokens() {
		require.NoError(t, err)
		if tok.ID >= 0 {
			got = append(got, tok.ID)
		}
		text.WriteString(tok.Text)
	}
	res = gen.Result()
	// Greedy stops early only at an end-of-generation token.
	require.LessOrEqual(t, len(got), 12)
	assert.Equal(t, want[:len(got)], got)
	assert.Equal(t, got, res.Tokens)
	assert.Equal(t, text.String(), res.Text)
	if len(got) == 12 {
		assert.Equal(t, llama.StopMaxTokens, res.Reason)
	} else {
		assert.Equal(t, llama.StopEOG, res.Reason)
	}
	assert.Equal(t, int32(len(prompt))+int32(res.Decoded), res.NextPos)
	assert.Positive(t, res.FirstTime)
	p, err := x.MaxPosition(0)
	require.NoError(t, err)
	assert.Equal(t, res.NextPos-1, p, "every yielded token but the last is in the KV cache")
}

func TestGenerateStopString(t *testing.T) {
	m, _ := loadTiny(t, gguf.TypeF16)
	prompt, _ := m.Vocab().Tokenize("once upon a time", true, false)
	x := newCtx(t, m, llama.ContextOptions{ContextSize: 256})
	prefill(t, x, prompt)
	var full llama.GenerateResult
	gen2 := llama.Generate(context.Background(), x, argmaxSampler{}, llama.GenerateOptions{Pos: int32(len(prompt)), MaxTokens: 20})
	for _, err := range gen2.Tokens() {
		require.NoError(t, err)
	}
	full = gen2.Result()
	require.GreaterOrEqual(t, len(full.Text), 4, "need some text to cut: %q", full.Text)
	stop := full.Text[len(full.Text)/2 : len(full.Text)/2+2]
	want := full.Text[:strings.Index(full.Text, stop)]

	require.NoError(t, x.ClearMemory())
	prefill(t, x, prompt)
	var res llama.GenerateResult
	var text string
	gen3 := llama.Generate(context.Background(), x, argmaxSampler{}, llama.GenerateOptions{
		Pos: int32(len(prompt)), MaxTokens: 20, Stop: []string{stop},
	})
	for tok, err := range gen3.Tokens() {
		require.NoError(t, err)
		text += tok.Text
	}
	res = gen3.Result()
	assert.Equal(t, want, text)
	assert.Equal(t, llama.StopString, res.Reason)
}

func TestGenerateBreakAndCancel(t *testing.T) {
	m, _ := loadTiny(t, gguf.TypeF16)
	prompt, _ := m.Vocab().Tokenize("hello", true, false)
	x := newCtx(t, m, llama.ContextOptions{ContextSize: 4096})

	// Breaking out after 3 tokens.
	prefill(t, x, prompt)
	var res llama.GenerateResult
	n := 0
	gen4 := llama.Generate(context.Background(), x, argmaxSampler{}, llama.GenerateOptions{Pos: int32(len(prompt))})
	for _, err := range gen4.Tokens() {
		require.NoError(t, err)
		n++
		if n == 3 {
			break
		}
	}
	res = gen4.Result()
	assert.Equal(t, llama.StopBreak, res.Reason)
	assert.Len(t, res.Tokens, 3)

	// Cancelling during generation ends it quickly with ErrCancelled.
	require.NoError(t, x.ClearMemory())
	prefill(t, x, prompt)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var gotErr error
	count, after := 0, 0
	gen5 := llama.Generate(ctx, x, argmaxSampler{}, llama.GenerateOptions{Pos: int32(len(prompt))})
	for _, err := range gen5.Tokens() {
		if err != nil {
			gotErr = err
			break
		}
		count++
		if count > 5 {
			after++
		}
		if count == 5 {
			cancel()
		}
	}
	res = gen5.Result()
	require.ErrorIs(t, gotErr, llama.ErrCancelled)
	assert.ErrorIs(t, gotErr, context.Canceled)
	assert.Equal(t, llama.StopCancelled, res.Reason)
	// Cancellation is seen before the next decode: no token after it.
	assert.Zero(t, after, "tokens generated after cancel")
	assert.Len(t, res.Tokens, 5)

	// The context is usable afterwards.
	require.NoError(t, x.ClearMemory())
	prefill(t, x, prompt)
}

func TestGenerateNeedsArguments(t *testing.T) {
	gen6 := llama.Generate(context.Background(), nil, nil, llama.GenerateOptions{})
	for _, err := range gen6.Tokens() {
		assert.ErrorIs(t, err, llama.ErrInvalidArgument)
	}
}

// TestGenerateStreamOnce: a Stream generates once; iterating Tokens again
// yields only an error.
func TestGenerateStreamOnce(t *testing.T) {
	st := llama.Generate(context.Background(), nil, nil, llama.GenerateOptions{})
	var first, second error
	for _, err := range st.Tokens() {
		first = err
	}
	for _, err := range st.Tokens() {
		second = err
	}
	assert.ErrorIs(t, first, llama.ErrInvalidArgument)
	assert.Contains(t, second.Error(), "iterated twice")
	assert.Equal(t, llama.StopError, st.Result().Reason)
}
