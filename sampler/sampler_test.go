package sampler_test

import (
	"context"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/vlm-go/vlm"
	"github.com/vlm-go/vlm/gguf"
	"github.com/vlm-go/vlm/internal/testmodel"
	"github.com/vlm-go/vlm/llama"
	"github.com/vlm-go/vlm/sampler"
)

func setup(t *testing.T) (*llama.Model, *llama.Context) {
	t.Helper()
	path, _ := testmodel.TinyPair(t, testmodel.ProjectorMLP, gguf.TypeF16)
	m, err := llama.Load(context.Background(), path, llama.LoadOptions{})
	require.NoError(t, err)
	t.Cleanup(func() { m.Close() })
	x, err := m.NewContext(llama.ContextOptions{ContextSize: 256, Threads: 2})
	require.NoError(t, err)
	t.Cleanup(func() { x.Close() })
	return m, x
}

// run decodes a prompt and samples n tokens.
func run(t *testing.T, m *llama.Model, x *llama.Context, s *sampler.Sampler, n int) []llama.Token {
	t.Helper()
	require.NoError(t, x.ClearMemory())
	prompt, err := m.Vocab().Tokenize("the cat and the dog", true, false)
	require.NoError(t, err)
	b, err := x.NewBatch(len(prompt))
	require.NoError(t, err)
	defer b.Close()
	require.NoError(t, b.AddSequence(prompt, 0, 0, true))
	require.NoError(t, x.Decode(context.Background(), b))
	pos := int32(len(prompt))
	var out []llama.Token
	for i := 0; i < n; i++ {
		tok, err := s.Sample(x, -1)
		require.NoError(t, err)
		out = append(out, tok)
		b.Clear()
		require.NoError(t, b.Add(tok, pos, true))
		pos++
		require.NoError(t, x.Decode(context.Background(), b))
	}
	return out
}

func argmax(xs []float32) llama.Token {
	best := 0
	for i, v := range xs {
		if v > xs[best] {
			best = i
		}
	}
	return llama.Token(best)
}

func TestZeroConfigIsGreedy(t *testing.T) {
	m, x := setup(t)
	s, err := sampler.New(m, sampler.Config{})
	require.NoError(t, err)
	defer s.Close()
	assert.True(t, s.Config().Greedy())
	assert.Equal(t, 1, s.Len())
	prompt, _ := m.Vocab().Tokenize("hello there", true, false)
	b, _ := x.NewBatch(len(prompt))
	defer b.Close()
	require.NoError(t, b.AddSequence(prompt, 0, 0, true))
	require.NoError(t, x.Decode(context.Background(), b))
	logits, err := x.Logits(-1)
	require.NoError(t, err)
	tok, err := s.Sample(x, -1)
	require.NoError(t, err)
	assert.Equal(t, argmax(logits), tok)
}

func TestSeededSamplingIsReproducible(t *testing.T) {
	m, x := setup(t)
	cfg := sampler.Config{Temperature: 1.5, TopK: 40, TopP: 0.95, MinP: 0.01, TypicalP: 0.9, Seed: 42,
		RepeatPenalty: 1.1, FrequencyPenalty: 0.1, PresencePenalty: 0.1}
	s1, err := sampler.New(m, cfg)
	require.NoError(t, err)
	defer s1.Close()
	a := run(t, m, x, s1, 24)
	require.NoError(t, s1.Reset())
	b := run(t, m, x, s1, 24)
	assert.Equal(t, a, b)
	assert.EqualValues(t, 42, s1.Seed())
	assert.Greater(t, s1.Len(), 5)

	cfg.Seed = 7
	s2, err := sampler.New(m, cfg)
	require.NoError(t, err)
	defer s2.Close()
	c := run(t, m, x, s2, 24)
	assert.NotEqual(t, a, c, "another seed gives another sample")

	cfg.Seed = 0
	s3, err := sampler.New(m, cfg)
	require.NoError(t, err)
	defer s3.Close()
	assert.NotZero(t, s3.Seed())
}

func TestLogitBiasBansTokens(t *testing.T) {
	m, x := setup(t)
	greedy, err := sampler.New(m, sampler.Config{})
	require.NoError(t, err)
	defer greedy.Close()
	first := run(t, m, x, greedy, 1)[0]
	banned, err := sampler.New(m, sampler.Config{LogitBias: map[llama.Token]float32{first: -1e9}})
	require.NoError(t, err)
	defer banned.Close()
	assert.NotEqual(t, first, run(t, m, x, banned, 1)[0])
}

func TestGrammarConstrainsOutput(t *testing.T) {
	m, x := setup(t)
	s, err := sampler.New(m, sampler.Config{Grammar: `root ::= ("yes" | "no") "."`})
	require.NoError(t, err)
	defer s.Close()
	toks := run(t, m, x, s, 3)
	text, err := m.Vocab().Detokenize(toks, false, false)
	require.NoError(t, err)
	assert.Contains(t, []string{"yes.", "no."}, trimAfterDot(text), "got %q", text)
}

func trimAfterDot(s string) string {
	for i, r := range s {
		if r == '.' {
			return s[:i+1]
		}
	}
	return s
}

func TestInvalidConfigs(t *testing.T) {
	m, _ := setup(t)
	for name, cfg := range map[string]sampler.Config{
		"temperature":              {Temperature: -1},
		"top-k":                    {TopK: -1},
		"top-p":                    {TopP: 1.5},
		"min-p":                    {MinP: -0.1},
		"typical":                  {TypicalP: 2},
		"last-n":                   {RepeatLastN: -2},
		"repeat":                   {RepeatPenalty: -1},
		"bias":                     {LogitBias: map[llama.Token]float32{1 << 30: 1}},
		"grammar":                  {Grammar: "root ::= (unclosed"},
		"triggers without grammar": {GrammarTriggers: []string{"x"}},
		"bad trigger":              {Grammar: `root ::= "a"`, GrammarTriggers: []string{"(unclosed"}},
	} {
		_, err := sampler.New(m, cfg)
		assert.ErrorIs(t, err, sampler.ErrInvalidConfig, name)
	}
}

// TestLazyGrammar: a lazy grammar lets anything through until its trigger
// matches, then constrains from the trigger's capture group on.
func TestLazyGrammar(t *testing.T) {
	m, _ := setup(t)
	v := m.Vocab()
	accept := func(text string) error {
		s, err := sampler.New(m, sampler.Config{Grammar: `root ::= "<call>" [0-9]+ "</call>"`, GrammarTriggers: []string{`[\s\S]*?(<call>)[\s\S]*`}})
		require.NoError(t, err)
		defer s.Close()
		toks, err := v.Tokenize(text, false, false)
		require.NoError(t, err)
		for _, tok := range toks {
			if err := s.Accept(tok); err != nil {
				return err
			}
		}
		return nil
	}
	assert.NoError(t, accept("the cat and the dog"), "before the trigger anything goes")
	assert.NoError(t, accept("the cat <call>42</call>"))
	assert.ErrorIs(t, accept("the cat <call>dog"), vlm.ErrInvalidArgument, "after the trigger the grammar holds")
}

func TestSamplerUseAfterCloseAndBadIndex(t *testing.T) {
	m, x := setup(t)
	s, err := sampler.New(m, sampler.Config{})
	require.NoError(t, err)
	run(t, m, x, s, 1)
	_, err = s.Sample(x, 99)
	assert.ErrorIs(t, err, llama.ErrInvalidArgument)
	assert.ErrorIs(t, s.Accept(-1), llama.ErrInvalidArgument)
	require.NoError(t, s.Accept(1))
	require.NoError(t, s.Close())
	require.NoError(t, s.Close())
	_, err = s.Sample(x, -1)
	assert.ErrorIs(t, err, sampler.ErrClosed)
	assert.ErrorIs(t, s.Accept(1), sampler.ErrClosed)
	assert.ErrorIs(t, s.Reset(), sampler.ErrClosed)
	require.NoError(t, m.Close())
	require.NoError(t, x.Close())
	_, err = sampler.New(m, sampler.Config{})
	assert.ErrorIs(t, err, sampler.ErrClosed)
}
