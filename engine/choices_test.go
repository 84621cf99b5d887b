package engine_test

import (
	"context"
	"errors"
	"math"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/vlm-go/vlm/engine"
	"github.com/vlm-go/vlm/internal/testmodel"
	"github.com/vlm-go/vlm/llama"
	"github.com/vlm-go/vlm/mtmd"
	"github.com/vlm-go/vlm/sampler"
)

// readAll reads a stream to its end and returns what it yielded.
func readAll(t testing.TB, s *engine.Stream) ([]llama.GeneratedToken, engine.Result) {
	t.Helper()
	var out []llama.GeneratedToken
	for tok, err := range s.Tokens() {
		require.NoError(t, err)
		out = append(out, tok)
	}
	return out, s.Result()
}

// firstLogits evaluates a's prompt on a context of its own and returns
// the logits its answer's first token is sampled from.
func (p pair) firstLogits(t testing.TB, a ask) []float32 {
	t.Helper()
	x, err := p.model.NewContext(llama.ContextOptions{ContextSize: 512, Threads: 1, FlashAttn: llama.FlashAttentionOff})
	require.NoError(t, err)
	defer x.Close()
	ch := p.tokenize(t, a)
	defer ch.Close()
	_, _, err = p.proj.Eval(context.Background(), x, ch, mtmd.EvalOptions{Logits: true})
	require.NoError(t, err)
	logits, err := x.Logits(-1)
	require.NoError(t, err)
	return logits
}

// TestLogprobs: with Logprobs, every answer token carries its
// log-probability under the model's raw distribution (checked against a
// log-softmax in float64 of the same prompt's logits on a context of its
// own) and the most likely tokens, sorted; the answer is the same as
// without; a logit bias that bans the likeliest token changes the answer
// but not the log-probabilities (they are the model's, before sampling).
func TestLogprobs(t *testing.T) {
	p := loadPair(t, testmodel.ProjectorIdefics3)
	e := newEngine(t, p, engine.Options{Sequences: 2})
	a := ask{img: picture(32, 24, 9), question: "What is in the picture?"}
	const maxTokens = 8

	plain, err := e.Submit(context.Background(), engine.Request{Chunks: p.tokenize(t, a), MaxTokens: maxTokens})
	require.NoError(t, err)
	plainToks, _ := readAll(t, plain)
	for _, tok := range plainToks {
		require.Nil(t, tok.Logprobs, "logprobs not asked for")
	}

	s, err := e.Submit(context.Background(), engine.Request{Chunks: p.tokenize(t, a), MaxTokens: maxTokens, Logprobs: true, TopLogprobs: 5})
	require.NoError(t, err)
	toks, res := readAll(t, s)
	require.NoError(t, res.Err)
	require.Equal(t, len(plainToks), len(toks))
	for i, tok := range toks {
		require.Equal(t, plainToks[i].ID, tok.ID, "token %d: logprobs changed the answer", i)
		if tok.ID < 0 {
			require.Nil(t, tok.Logprobs)
			continue
		}
		lp := tok.Logprobs
		require.NotNil(t, lp, "token %d", i)
		require.LessOrEqual(t, lp.Logprob, float32(0))
		require.Len(t, lp.Top, 5)
		// Greedy: the chosen token is the likeliest.
		require.Equal(t, tok.ID, lp.Top[0].ID, "token %d", i)
		require.Equal(t, lp.Logprob, lp.Top[0].Logprob)
		mass := 0.0
		for j, c := range lp.Top {
			mass += math.Exp(float64(c.Logprob))
			if j > 0 {
				require.GreaterOrEqual(t, lp.Top[j-1].Logprob, c.Logprob, "token %d: Top sorted", i)
			}
		}
		require.LessOrEqual(t, mass, 1.0001)
	}

	// The first token against an independent log-softmax.
	logits := p.firstLogits(t, a)
	maxL := math.Inf(-1)
	for _, l := range logits {
		maxL = math.Max(maxL, float64(l))
	}
	sum := 0.0
	for _, l := range logits {
		sum += math.Exp(float64(l) - maxL)
	}
	lse := maxL + math.Log(sum)
	first := toks[0]
	require.InDelta(t, float64(logits[first.ID])-lse, float64(first.Logprobs.Logprob), 1e-3)
	for _, c := range first.Logprobs.Top {
		require.InDelta(t, float64(logits[c.ID])-lse, float64(c.Logprob), 1e-3)
	}

	// Ban the likeliest first token: another is sampled, and its
	// log-probability is the model's (the banned one still leads Top).
	banned := first.ID
	s, err = e.Submit(context.Background(), engine.Request{Chunks: p.tokenize(t, a), MaxTokens: 2, Logprobs: true, TopLogprobs: 3,
		Sampler: sampler.Config{LogitBias: map[llama.Token]float32{banned: float32(math.Inf(-1))}}})
	require.NoError(t, err)
	biased, res := readAll(t, s)
	require.NoError(t, res.Err)
	require.NotEqual(t, banned, biased[0].ID)
	require.Equal(t, banned, biased[0].Logprobs.Top[0].ID, "raw log-probabilities: the bias is not in them")
	require.InDelta(t, float64(logits[biased[0].ID])-lse, float64(biased[0].Logprobs.Logprob), 1e-3)

	_, err = e.Submit(context.Background(), engine.Request{Tokens: []llama.Token{1, 2}, TopLogprobs: 21, Logprobs: true})
	require.ErrorIs(t, err, engine.ErrInvalidRequest)
	_, err = e.Submit(context.Background(), engine.Request{Tokens: []llama.Token{1, 2}, TopLogprobs: 2})
	require.ErrorIs(t, err, engine.ErrInvalidRequest, "TopLogprobs without Logprobs")
}

// TestSubmitN: three choices about one new picture evaluate the prompt
// (and encode the picture) once — the engine's counters show one prefill
// and two forks — and each choice samples with seed Seed+i.
func TestSubmitN(t *testing.T) {
	p := loadPair(t, testmodel.ProjectorIdefics3)
	e := newEngine(t, p, engine.Options{Sequences: 3})
	a := ask{img: picture(40, 32, 21), question: "Describe the picture."}
	const maxTokens, n = 10, 3
	cfg := sampler.Config{Temperature: 1, Seed: 42}

	before := e.Stats()
	streams, err := e.SubmitN(context.Background(), engine.Request{Chunks: p.tokenize(t, a), MaxTokens: maxTokens, Sampler: cfg, Logprobs: true}, n)
	require.NoError(t, err)
	require.Len(t, streams, n)
	results := make([]engine.Result, n)
	done := make(chan struct{})
	for i, s := range streams {
		go func() {
			defer func() { done <- struct{}{} }()
			for tok, err := range s.Tokens() {
				if err == nil && tok.ID >= 0 && tok.Logprobs == nil {
					err = errors.New("a token without logprobs")
				}
				if err != nil {
					results[i].Err = err
					return
				}
			}
			results[i] = s.Result()
		}()
	}
	for range streams {
		<-done
	}
	after := e.Stats()
	decoded := 0
	for i, r := range results {
		require.NoError(t, r.Err, "choice %d", i)
		require.Equal(t, results[0].PromptTokens, r.PromptTokens)
		decoded += r.Decoded
	}
	prompt := results[0]
	require.Equal(t, prompt.PromptTokens, prompt.EvaluatedTokens, "the first choice evaluates the prompt")
	require.Positive(t, prompt.ImagesEncoded)
	for i, r := range results[1:] {
		require.Zero(t, r.EvaluatedTokens, "choice %d evaluated its prompt", i+1)
		require.Equal(t, r.PromptTokens, r.CachedTokens, "choice %d starts from the first one's prompt", i+1)
		require.Zero(t, r.ImagesEncoded, "choice %d", i+1)
		require.NotEqual(t, prompt.Sequence, r.Sequence)
	}
	require.Equal(t, int64(n-1), after.Forked-before.Forked)
	require.Equal(t, int64(n), after.Completed-before.Completed)
	// One prefill: the prompt's text tokens once, then the answers'.
	require.Equal(t, int64(prompt.PromptTokens-prompt.ImageTokens+decoded), after.TokensDecoded-before.TokensDecoded)

	// Choice i samples with seed 42+i; the same SubmitN again gives the
	// same choices; greedy choices are the greedy answer alone.
	streams, err = e.SubmitN(context.Background(), engine.Request{Chunks: p.tokenize(t, a), MaxTokens: maxTokens, Sampler: cfg}, n)
	require.NoError(t, err)
	distinct := map[string]bool{}
	for i, r := range results {
		require.Equal(t, cfg.Seed+uint32(i), r.Seed, "choice %d", i)
		again := streams[i].Wait()
		require.NoError(t, again.Err)
		require.Equal(t, r.Tokens, again.Tokens, "choice %d again", i)
		distinct[r.Text] = true
	}
	require.Greater(t, len(distinct), 1, "seeded choices should differ")
	alone := p.alone(t, a, maxTokens)
	streams, err = e.SubmitN(context.Background(), engine.Request{Chunks: p.tokenize(t, a), MaxTokens: maxTokens}, n)
	require.NoError(t, err)
	for i, s := range streams {
		r := s.Wait()
		require.NoError(t, r.Err)
		require.Equal(t, alone, r.Tokens, "greedy choice %d", i)
	}
}

// TestSubmitNLimits: n beyond the sequences, or a KV cache that cannot
// hold every answer, is refused at once; cancelling the request ends
// every choice.
func TestSubmitNLimits(t *testing.T) {
	p := loadPair(t, testmodel.ProjectorIdefics3)
	e := newEngine(t, p, engine.Options{Sequences: 2, SequenceLength: 128, ContextSize: 200})
	toks := []llama.Token{1, 5, 6, 7}
	_, err := e.SubmitN(context.Background(), engine.Request{Tokens: toks}, 3)
	require.ErrorIs(t, err, engine.ErrInvalidRequest)
	_, err = e.SubmitN(context.Background(), engine.Request{Tokens: toks}, 0)
	require.ErrorIs(t, err, engine.ErrInvalidRequest)
	_, err = e.SubmitN(context.Background(), engine.Request{Tokens: toks}, 2) // 2 × 124 answer cells > 200
	require.ErrorIs(t, err, llama.ErrPromptTooLong)

	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	streams, err := e.SubmitN(ctx, engine.Request{Tokens: toks, MaxTokens: 4}, 2)
	require.NoError(t, err)
	for i, s := range streams {
		r := s.Wait()
		require.ErrorIs(t, r.Err, llama.ErrCancelled, "choice %d", i)
	}
	// The engine goes on.
	streams, err = e.SubmitN(context.Background(), engine.Request{Tokens: toks, MaxTokens: 4}, 2)
	require.NoError(t, err)
	for i, s := range streams {
		r := s.Wait()
		require.NoError(t, r.Err, "choice %d", i)
		require.Len(t, r.Tokens, 4)
	}
	require.Equal(t, streams[0].Result().Tokens, streams[1].Result().Tokens, "greedy choices are the same")
}
