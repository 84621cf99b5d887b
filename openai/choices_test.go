package openai_test

import (
	"context"
	"encoding/json"
	"strconv"
	"strings"
	"testing"

	oa "github.com/openai/openai-go/v3"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/vlm-go/vlm/pipeline"
)

// TestChatLogprobs: logprobs with top_logprobs in OpenAI's shape (token,
// logprob, bytes, top_logprobs), one entry per completion token, greedy
// picks the likeliest; streamed, the chunks carry the same entries.
func TestChatLogprobs(t *testing.T) {
	s := newServer(t, pipeline.Options{Sequences: 2, SequenceLength: 512}, oaOptions())
	ctx := context.Background()
	params := oa.ChatCompletionNewParams{
		Messages:  []oa.ChatCompletionMessageParamUnion{userWithImages(t, "What is here?", 1)},
		MaxTokens: oa.Int(6), Temperature: oa.Float(0), Logprobs: oa.Bool(true), TopLogprobs: oa.Int(3),
	}
	c, err := s.client.Chat.Completions.New(ctx, params)
	require.NoError(t, err)
	require.Len(t, c.Choices, 1)
	content := c.Choices[0].Logprobs.Content
	require.Len(t, content, int(c.Usage.CompletionTokens))
	for i, e := range content {
		require.LessOrEqual(t, e.Logprob, 0.0)
		require.Len(t, e.TopLogprobs, 3)
		require.Equal(t, e.Token, e.TopLogprobs[0].Token, "token %d: greedy picks the likeliest", i)
		require.Equal(t, e.Logprob, e.TopLogprobs[0].Logprob)
		b := make([]byte, len(e.Bytes))
		for j, v := range e.Bytes {
			b[j] = byte(v)
		}
		require.Equal(t, strings.ToValidUTF8(string(b), "\uFFFD"), e.Token)
	}

	params.StreamOptions = oa.ChatCompletionStreamOptionsParam{IncludeUsage: oa.Bool(true)}
	st := s.client.Chat.Completions.NewStreaming(ctx, params)
	var streamed []oa.ChatCompletionTokenLogprob
	var text strings.Builder
	for st.Next() {
		for _, ch := range st.Current().Choices {
			text.WriteString(ch.Delta.Content)
			streamed = append(streamed, ch.Logprobs.Content...)
		}
	}
	require.NoError(t, st.Err())
	assert.Equal(t, c.Choices[0].Message.Content, text.String())
	require.Len(t, streamed, len(content))
	for i := range content {
		assert.Equal(t, content[i].Token, streamed[i].Token)
		assert.InDelta(t, content[i].Logprob, streamed[i].Logprob, 1e-6)
	}
}

// TestChatN: n = 3 from one prefill: three choices indexed 0–2, the
// prompt counted once in usage, the engine forked twice; seeded, the
// same request gives the same choices; greedy, every choice is the greedy
// answer; streamed, the chunks carry their choice's index.
func TestChatN(t *testing.T) {
	s := newServer(t, pipeline.Options{Sequences: 3, SequenceLength: 512}, oaOptions())
	ctx := context.Background()
	params := oa.ChatCompletionNewParams{
		Messages:  []oa.ChatCompletionMessageParamUnion{userWithImages(t, "Describe it.", 1)},
		MaxTokens: oa.Int(8), Temperature: oa.Float(1), Seed: oa.Int(11), N: oa.Int(3),
	}
	before := s.p.EngineStats()
	c, err := s.client.Chat.Completions.New(ctx, params)
	require.NoError(t, err)
	after := s.p.EngineStats()
	require.Equal(t, int64(2), after.Forked-before.Forked, "one prefill, two forks")
	require.Len(t, c.Choices, 3)
	one := params
	one.N = oa.Int(1)
	single, err := s.client.Chat.Completions.New(ctx, one)
	require.NoError(t, err)
	require.Equal(t, single.Usage.PromptTokens, c.Usage.PromptTokens, "the prompt is counted once")
	for i, ch := range c.Choices {
		require.EqualValues(t, i, ch.Index)
	}
	// The same request again: the same choices (choice i has seed 11+i).
	again, err := s.client.Chat.Completions.New(ctx, params)
	require.NoError(t, err)
	require.Equal(t, c.Usage, again.Usage)
	for i, ch := range c.Choices {
		require.Equal(t, ch.Message.Content, again.Choices[i].Message.Content, "choice %d", i)
	}
	// Greedy choices are the greedy answer.
	greedy := one
	greedy.Temperature = oa.Float(0)
	alone, err := s.client.Chat.Completions.New(ctx, greedy)
	require.NoError(t, err)
	greedy.N = oa.Int(3)
	g, err := s.client.Chat.Completions.New(ctx, greedy)
	require.NoError(t, err)
	for i, ch := range g.Choices {
		require.Equal(t, alone.Choices[0].Message.Content, ch.Message.Content, "greedy choice %d", i)
	}
	require.Equal(t, 3*alone.Usage.CompletionTokens, g.Usage.CompletionTokens)

	st := s.client.Chat.Completions.NewStreaming(ctx, params)
	texts := map[int64]*strings.Builder{}
	finishes := map[int64]string{}
	for st.Next() {
		for _, ch := range st.Current().Choices {
			if texts[ch.Index] == nil {
				texts[ch.Index] = &strings.Builder{}
			}
			texts[ch.Index].WriteString(ch.Delta.Content)
			if ch.FinishReason != "" {
				finishes[ch.Index] = ch.FinishReason
			}
		}
	}
	require.NoError(t, st.Err())
	require.Len(t, texts, 3)
	for i, ch := range c.Choices {
		assert.Equal(t, ch.Message.Content, texts[int64(i)].String(), "choice %d streamed", i)
		assert.Equal(t, ch.FinishReason, finishes[int64(i)])
	}
}

// TestChatLogitBias: +100 on a token makes greedy decoding pick it every
// time; -100 on the greedy answer's first token changes the answer; the
// log-probabilities stay the model's (the banned token still leads).
func TestChatLogitBias(t *testing.T) {
	s := newServer(t, pipeline.Options{SequenceLength: 512}, oaOptions())
	ctx := context.Background()
	params := oa.ChatCompletionNewParams{
		Messages:  []oa.ChatCompletionMessageParamUnion{oa.UserMessage("Say something.")},
		MaxTokens: oa.Int(4), Temperature: oa.Float(0), Logprobs: oa.Bool(true), TopLogprobs: oa.Int(1),
	}
	plain, err := s.client.Chat.Completions.New(ctx, params)
	require.NoError(t, err)
	first := plain.Choices[0].Logprobs.Content[0].Token
	v := s.p.Model().Vocab()
	ids, err := v.Tokenize(first, false, true)
	require.NoError(t, err)
	require.Len(t, ids, 1, "%q is one token", first)

	params.LogitBias = map[string]int64{strconv.Itoa(int(ids[0])): -100}
	banned, err := s.client.Chat.Completions.New(ctx, params)
	require.NoError(t, err)
	lp := banned.Choices[0].Logprobs.Content[0]
	require.NotEqual(t, first, lp.Token)
	require.Equal(t, first, lp.TopLogprobs[0].Token, "raw log-probabilities")

	// Force a word: its first token, 4 times.
	word, err := v.Tokenize(" banana", false, false)
	require.NoError(t, err)
	params.LogitBias = map[string]int64{strconv.Itoa(int(word[0])): 100}
	params.Logprobs, params.TopLogprobs = oa.Bool(false), oa.Int(0)
	forced, err := s.client.Chat.Completions.New(ctx, params)
	require.NoError(t, err)
	piece, err := v.Piece(word[0], false)
	require.NoError(t, err)
	assert.Equal(t, strings.Repeat(string(piece), 4), forced.Choices[0].Message.Content)
}

// TestCompletionsLogprobsN: /v1/completions with logprobs (the legacy
// shape: tokens, token_logprobs, top_logprobs, text_offset) and n with
// two prompts: choices indexed prompt×n + i, each prompt counted once.
func TestCompletionsLogprobsN(t *testing.T) {
	s := newServer(t, pipeline.Options{Sequences: 2, SequenceLength: 512}, oaOptions())
	status, body := postRaw(t, s, "/v1/completions", `{"prompt":["Once upon a time","The cat"],"max_tokens":5,"temperature":0.8,"seed":3,"n":2,"logprobs":2}`)
	require.Equal(t, 200, status, body)
	var resp struct {
		Choices []struct {
			Index    int    `json:"index"`
			Text     string `json:"text"`
			Logprobs struct {
				Tokens        []string             `json:"tokens"`
				TokenLogprobs []float64            `json:"token_logprobs"`
				TopLogprobs   []map[string]float64 `json:"top_logprobs"`
				TextOffset    []int                `json:"text_offset"`
			} `json:"logprobs"`
		} `json:"choices"`
		Usage map[string]int `json:"usage"`
	}
	require.NoError(t, json.Unmarshal([]byte(body), &resp))
	require.Len(t, resp.Choices, 4)
	tokens := 0
	for i, c := range resp.Choices {
		require.Equal(t, i, c.Index)
		l := c.Logprobs
		require.NotEmpty(t, l.Tokens)
		require.Len(t, l.TokenLogprobs, len(l.Tokens))
		require.Len(t, l.TopLogprobs, len(l.Tokens))
		require.Len(t, l.TextOffset, len(l.Tokens))
		for j, top := range l.TopLogprobs {
			require.LessOrEqual(t, len(top), 3, "logprobs+1 at most")
			require.Contains(t, top, l.Tokens[j], "the sampled token is listed")
		}
		tokens += len(l.Tokens)
	}
	require.Equal(t, tokens, resp.Usage["completion_tokens"])

	one := func(prompt string) int {
		status, body := postRaw(t, s, "/v1/completions", `{"prompt":"`+prompt+`","max_tokens":1}`)
		require.Equal(t, 200, status, body)
		var r struct{ Usage map[string]int }
		require.NoError(t, json.Unmarshal([]byte(body), &r))
		return r.Usage["prompt_tokens"]
	}
	require.Equal(t, one("Once upon a time")+one("The cat"), resp.Usage["prompt_tokens"], "each prompt once")

	// Streamed, each choice's chunks carry its index and logprobs.
	status, body = postRaw(t, s, "/v1/completions", `{"prompt":"The cat","max_tokens":4,"n":2,"logprobs":0,"stream":true,"seed":3,"temperature":0.8}`)
	require.Equal(t, 200, status)
	seen := map[int]int{}
	for _, line := range strings.Split(body, "\n") {
		data, ok := strings.CutPrefix(line, "data: ")
		if !ok || data == "[DONE]" {
			continue
		}
		var ev struct {
			Choices []struct {
				Index    int `json:"index"`
				Logprobs *struct {
					Tokens []string `json:"tokens"`
				} `json:"logprobs"`
			} `json:"choices"`
		}
		require.NoError(t, json.Unmarshal([]byte(data), &ev), data)
		for _, c := range ev.Choices {
			if c.Logprobs != nil {
				seen[c.Index] += len(c.Logprobs.Tokens)
			}
		}
	}
	require.Len(t, seen, 2)
	for i, n := range seen {
		require.Positive(t, n, "choice %d", i)
	}
}
