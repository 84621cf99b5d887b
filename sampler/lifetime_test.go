package sampler_test

import (
	"context"
	"math"
	"os"
	"os/exec"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/vlm-go/vlm/gguf"
	"github.com/vlm-go/vlm/internal/testmodel"
	"github.com/vlm-go/vlm/llama"
	"github.com/vlm-go/vlm/sampler"
)

// TestGrammarSamplerKeepsItsModel closes the model under a grammar sampler:
// llama.cpp's grammar keeps the model's vocabulary pointer, so the sampler
// holds the model (as a context does) and Accept/Reset keep working. The
// scenario runs in a child process with glibc's MALLOC_PERTURB_ set, so
// that a use of the freed vocabulary crashes instead of reading stale bytes
// (the old code crashed there).
func TestGrammarSamplerKeepsItsModel(t *testing.T) {
	if os.Getenv("VLM_TEST_GRAMMAR_CHILD") == "1" {
		grammarSamplerAfterModelClose(t)
		return
	}
	cmd := exec.Command(os.Args[0], "-test.run=^TestGrammarSamplerKeepsItsModel$", "-test.count=1", "-test.v")
	cmd.Env = append(os.Environ(), "VLM_TEST_GRAMMAR_CHILD=1", "MALLOC_PERTURB_=165")
	out, err := cmd.CombinedOutput()
	require.NoError(t, err, "child process:\n%s", out)
	assert.Contains(t, string(out), "--- PASS: TestGrammarSamplerKeepsItsModel")
}

func grammarSamplerAfterModelClose(t *testing.T) {
	path, _ := testmodel.TinyPair(t, testmodel.ProjectorMLP, gguf.TypeF16)
	m, err := llama.Load(context.Background(), path, llama.LoadOptions{})
	require.NoError(t, err)
	s, err := sampler.New(m, sampler.Config{Grammar: `root ::= [ a-z]+ "."`})
	require.NoError(t, err)
	yes, err := m.Vocab().Tokenize("yes", false, false)
	require.NoError(t, err)
	require.NotEmpty(t, yes)
	dot, err := m.Vocab().Tokenize("!", false, false)
	require.NoError(t, err)
	require.NoError(t, m.Close())
	// A token the grammar rejects is an error, not a C++ exception that
	// aborts the process, and leaves the grammar's state alone.
	for range 3 {
		assert.ErrorIs(t, s.Accept(dot[len(dot)-1]), llama.ErrInvalidArgument)
		for _, tok := range yes {
			require.NoError(t, s.Accept(tok))
		}
		require.NoError(t, s.Reset())
	}
	require.NoError(t, s.Close())
	assert.ErrorIs(t, s.Accept(yes[0]), sampler.ErrClosed)
	assert.ErrorIs(t, s.Reset(), sampler.ErrClosed)
	_, err = m.Info()
	assert.ErrorIs(t, err, llama.ErrClosed)
	// A closed model makes no new grammar sampler.
	_, err = sampler.New(m, sampler.Config{Grammar: `root ::= "a"`})
	assert.ErrorIs(t, err, llama.ErrClosed)
}

// TestRepeatLastNWholeContextPenalises: RepeatLastN -1 (the whole context)
// must apply the penalties; llama.cpp turns them off for its own -1.
func TestRepeatLastNWholeContextPenalises(t *testing.T) {
	m, x := setup(t)
	prompt, err := m.Vocab().Tokenize("the cat and the dog", true, false)
	require.NoError(t, err)
	b, err := x.NewBatch(len(prompt))
	require.NoError(t, err)
	defer b.Close()
	require.NoError(t, b.AddSequence(prompt, 0, 0, true))
	require.NoError(t, x.Decode(context.Background(), b))
	logits, err := x.Logits(-1)
	require.NoError(t, err)
	best := argmax(logits)
	for _, lastN := range []int{0, 8, -1} {
		s, err := sampler.New(m, sampler.Config{PresencePenalty: 1e6, RepeatLastN: lastN})
		require.NoError(t, err)
		require.NoError(t, s.Accept(best))
		tok, err := s.Sample(x, -1)
		require.NoError(t, err)
		assert.NotEqual(t, best, tok, "RepeatLastN %d: the penalised token was picked again", lastN)
		require.NoError(t, s.Close())
	}
}

// TestGrammarWithNothingLeftIsAnError: a finished grammar allows only
// end-of-generation tokens; with those banned nothing is left, and Sample
// returns an error (llama.cpp's sampler accepted the arg-max of -inf logits,
// and the grammar threw: the process aborted).
func TestGrammarWithNothingLeftIsAnError(t *testing.T) {
	m, x := setup(t)
	v := m.Vocab()
	ban := map[llama.Token]float32{}
	for i := 0; i < v.Size(); i++ {
		if v.IsEOG(llama.Token(i)) {
			ban[llama.Token(i)] = float32(math.Inf(-1))
		}
	}
	require.NotEmpty(t, ban)
	s, err := sampler.New(m, sampler.Config{Grammar: `root ::= [a-z]`, LogitBias: ban})
	require.NoError(t, err)
	defer s.Close()
	prompt, err := v.Tokenize("the cat", true, false)
	require.NoError(t, err)
	b, err := x.NewBatch(len(prompt) + 1)
	require.NoError(t, err)
	defer b.Close()
	require.NoError(t, b.AddSequence(prompt, 0, 0, true))
	require.NoError(t, x.Decode(context.Background(), b))
	tok, err := s.Sample(x, -1)
	require.NoError(t, err, "one letter is allowed")
	b.Clear()
	require.NoError(t, b.Add(tok, int32(len(prompt)), true))
	require.NoError(t, x.Decode(context.Background(), b))
	_, err = s.Sample(x, -1)
	assert.ErrorIs(t, err, llama.ErrInvalidArgument)
}
