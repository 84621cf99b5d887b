package llama

import (
	"math"
	"slices"
)

// MaxTopLogprobs bounds the alternatives Logprobs lists per token (OpenAI's
// top_logprobs allows 0 to 20).
const MaxTopLogprobs = 20

// TokenLogprob is a token and its log-probability.
type TokenLogprob struct {
	ID      Token
	Logprob float32
}

// Logprobs are a generated token's log-probability and the most likely
// tokens at its position, under the model's own distribution: the
// log-softmax of the raw logits, before any sampler (temperature, top-k,
// top-p, penalties, logit bias, grammar) changed them — what vLLM returns
// by default (its logprobs_mode "raw_logprobs"). A token the sampler
// picked may therefore be unlikely, or absent from Top.
type Logprobs struct {
	// Logprob is the chosen token's log-probability (≤ 0).
	Logprob float32
	// Top are the most likely tokens, most likely first (ties: lower ID
	// first); as many as asked for.
	Top []TokenLogprob
}

// LogSumExp prepares log-probabilities from one output's logits: it
// returns log Σ exp(logits), so that token t's log-probability is
// logits[t] − the result. Non-finite logits count as impossible tokens;
// all of them non-finite gives +Inf.
func LogSumExp(logits []float32) float32 {
	m := float32(math.Inf(-1))
	for _, l := range logits {
		if l > m && !math.IsInf(float64(l), 1) {
			m = l
		}
	}
	if math.IsInf(float64(m), -1) || math.IsNaN(float64(m)) {
		return float32(math.Inf(1))
	}
	var sum float64
	for _, l := range logits {
		if l == l && !math.IsInf(float64(l), 0) {
			sum += math.Exp(float64(l - m))
		}
	}
	return m + float32(math.Log(sum))
}

// TopLogprobs returns the n most likely tokens of logits with their
// log-probabilities (lse is LogSumExp(logits)), most likely first, ties
// broken by the lower ID; dst's memory is reused.
func TopLogprobs(logits []float32, lse float32, n int, dst []TokenLogprob) []TokenLogprob {
	dst = dst[:0]
	if n <= 0 {
		return dst
	}
	n = min(n, len(logits))
	// A small sorted window: n is at most a few dozen, the vocabulary
	// large, so most logits are one comparison with the window's last.
	better := func(a, b TokenLogprob) bool { return a.Logprob > b.Logprob || (a.Logprob == b.Logprob && a.ID < b.ID) }
	for id, l := range logits {
		if l != l {
			continue
		}
		c := TokenLogprob{ID: Token(id), Logprob: l}
		if len(dst) == n && !better(c, dst[n-1]) {
			continue
		}
		i, _ := slices.BinarySearchFunc(dst, c, func(e, t TokenLogprob) int {
			if better(e, t) {
				return -1
			}
			return 1
		})
		if len(dst) < n {
			dst = append(dst, TokenLogprob{})
		}
		copy(dst[i+1:], dst[i:len(dst)-1])
		dst[i] = c
	}
	for i := range dst {
		dst[i].Logprob -= lse
	}
	return dst
}
