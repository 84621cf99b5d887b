package openai_test

import (
	"context"
	"fmt"
	"io"
	"iter"
	"net/http"
	"strings"
	"testing"
	"time"

	oa "github.com/openai/openai-go/v3"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/vlm-go/vlm/openai"
	"github.com/vlm-go/vlm/pipeline"
)

func oaOptions() openai.Options { return openai.Options{ModelName: "tiny"} }

// postRaw sends body to path with the test key.
func postRaw(t testing.TB, s *server, path, body string) (int, string) {
	t.Helper()
	req, err := http.NewRequest("POST", s.srv.URL+path, strings.NewReader(body))
	require.NoError(t, err)
	req.Header.Set("Authorization", "Bearer "+testKey)
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(data)
}

// hold starts a streamed answer and reads only its first token: the
// request keeps its sequence (its stream buffer fills, then it pauses)
// until release is called.
func hold(t *testing.T, p *pipeline.Pipeline, text string) (release func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	st := p.Stream(ctx, pipeline.Input{Text: text}, pipeline.GenerateOptions{MaxTokens: 300})
	next, stop := iter.Pull2(st.Tokens())
	done := make(chan struct{})
	go func() {
		defer close(done)
		_, _, _ = next() // blocks while the request waits for a sequence
	}()
	return func() {
		cancel()
		<-done
		stop()
	}
}

// TestGatewayMetricSemantics checks the gauges an Inference Extension
// endpoint picker reads (vLLM's names): waiting rises with queued requests,
// running never exceeds the sequences, KV usage stays in [0, 1], rises with
// the cells running requests hold and falls when they end.
func TestGatewayMetricSemantics(t *testing.T) {
	s := newServer(t, pipeline.Options{Sequences: 2, SequenceLength: 512, MaxWaiting: 16}, oaOptions())
	const (
		waiting = `vllm:num_requests_waiting{model_name="tiny"}`
		running = `vllm:num_requests_running{model_name="tiny"}`
		usage   = `vllm:kv_cache_usage_perc{model_name="tiny"}`
	)
	m := scrape(t, s)
	require.Contains(t, m, waiting)
	assert.Zero(t, m[waiting])
	assert.Zero(t, m[running])
	assert.Zero(t, m[usage])
	cells := m["vlm_kv_cells"]
	require.Positive(t, cells)
	info := fmt.Sprintf(`vllm:cache_config_info{block_size="1",enable_prefix_caching="True",model_name="tiny",num_gpu_blocks="%d"}`, int(cells))
	assert.Equal(t, 1.0, m[info], "cache info %v", m)

	eventually := func(what string, cond func(map[string]float64) bool) map[string]float64 {
		t.Helper()
		var last map[string]float64
		require.Eventually(t, func() bool { last = scrape(t, s); return cond(last) }, 10*time.Second, 10*time.Millisecond, "%s: %v", what, last)
		return last
	}
	var releases []func()
	defer func() {
		for _, r := range releases {
			r()
		}
	}()
	releases = append(releases, hold(t, s.p, "first question"))
	// A scrape is no snapshot (each gauge reads the engine on its own):
	// wait for the gauges to agree.
	one := eventually("one running", func(m map[string]float64) bool { return m[running] == 1 && m[usage] > 0 })
	releases = append(releases, hold(t, s.p, "second question, a little longer than the first"))
	two := eventually("two running, usage risen with the cells held", func(m map[string]float64) bool {
		return m[running] == 2 && m[usage] > one[usage]
	})
	assert.LessOrEqual(t, two[usage], 1.0)
	for i := range 3 {
		releases = append(releases, hold(t, s.p, fmt.Sprintf("queued question %d", i)))
		eventually("queued", func(m map[string]float64) bool { return m[waiting] == float64(i+1) })
	}
	m = scrape(t, s)
	assert.Equal(t, 2.0, m[running], "running never exceeds the sequences")
	assert.LessOrEqual(t, m[usage], 1.0)

	for _, r := range releases {
		r()
	}
	releases = nil
	m = eventually("all ended, usage back to 0", func(m map[string]float64) bool { return m[running] == 0 && m[waiting] == 0 && m[usage] == 0 })
	assert.Positive(t, m["vlm_kv_cells_cached"], "free sequences keep their prefixes")
}

// TestGatewayPrefixReuse: a prefix-heavy workload (one long system prompt,
// many questions) is served from the cached prefix, as the prefix scorer
// expects of a server that reports block_size 1.
func TestGatewayPrefixReuse(t *testing.T) {
	s := newServer(t, pipeline.Options{Sequences: 2, SequenceLength: 512}, oaOptions())
	system := "You are a careful assistant. Answer in one short sentence, and never guess. "
	for range 3 {
		system += system[:60]
	}
	cached := 0
	for i := range 4 {
		r, err := s.p.Run(context.Background(), pipeline.Input{Prompt: system + fmt.Sprintf("Question %d?", i)}, pipeline.GenerateOptions{MaxTokens: 4})
		require.NoError(t, err)
		if i > 0 {
			assert.Greater(t, r.Stats.CachedTokens, r.Stats.PromptTokens/2, "request %d: the shared prefix comes from the cache", i)
		}
		cached += r.Stats.CachedTokens
	}
	require.Positive(t, cached)
	assert.Positive(t, scrape(t, s)["vlm_kv_cells_cached"])
}

// TestCompletions drives /v1/completions with the official client: a
// string prompt, several prompts, streaming, and the refused fields.
func TestCompletions(t *testing.T) {
	s := newServer(t, pipeline.Options{Sequences: 2, SequenceLength: 512}, oaOptions())
	ctx := context.Background()
	c, err := s.client.Completions.New(ctx, oa.CompletionNewParams{
		Model:     "tiny",
		Prompt:    oa.CompletionNewParamsPromptUnion{OfString: oa.String("The capital of France is")},
		MaxTokens: oa.Int(5), Temperature: oa.Float(0), Seed: oa.Int(1),
	})
	require.NoError(t, err)
	require.Len(t, c.Choices, 1)
	assert.Equal(t, "text_completion", string(c.Object))
	assert.NotEmpty(t, c.Choices[0].Text)
	assert.Equal(t, oa.CompletionChoiceFinishReasonLength, c.Choices[0].FinishReason)
	assert.Equal(t, int64(5), c.Usage.CompletionTokens)
	assert.Positive(t, c.Usage.PromptTokens)
	// The raw prompt is not wrapped in the chat template: the same text
	// through the pipeline's Prompt gives the same greedy answer.
	r, err := s.p.Run(ctx, pipeline.Input{Prompt: "The capital of France is"}, pipeline.GenerateOptions{MaxTokens: 5})
	require.NoError(t, err)
	assert.Equal(t, r.Text, c.Choices[0].Text)
	assert.Equal(t, r.Stats.PromptTokens, int(c.Usage.PromptTokens))
	chat, err := s.p.Run(ctx, pipeline.Input{Text: "The capital of France is"}, pipeline.GenerateOptions{MaxTokens: 5})
	require.NoError(t, err)
	assert.Greater(t, chat.Stats.PromptTokens, r.Stats.PromptTokens, "the chat path adds the template")

	// Several prompts: one choice each, in order, usage summed.
	c, err = s.client.Completions.New(ctx, oa.CompletionNewParams{
		Model:     "tiny",
		Prompt:    oa.CompletionNewParamsPromptUnion{OfArrayOfStrings: []string{"One", "Two two", "Three three three"}},
		MaxTokens: oa.Int(3), Temperature: oa.Float(0),
	})
	require.NoError(t, err)
	require.Len(t, c.Choices, 3)
	sum := 0
	for i, ch := range c.Choices {
		assert.Equal(t, int64(i), ch.Index)
		sum += 3
	}
	assert.Equal(t, int64(sum), c.Usage.CompletionTokens)

	// Streaming.
	st := s.client.Completions.NewStreaming(ctx, oa.CompletionNewParams{
		Model: "tiny", Prompt: oa.CompletionNewParamsPromptUnion{OfString: oa.String("The capital of France is")},
		MaxTokens: oa.Int(5), Temperature: oa.Float(0),
	})
	text, finish := "", ""
	for st.Next() {
		ch := st.Current()
		if len(ch.Choices) > 0 {
			text += ch.Choices[0].Text
			if ch.Choices[0].FinishReason != "" {
				finish = string(ch.Choices[0].FinishReason)
			}
		}
	}
	require.NoError(t, st.Err())
	assert.Equal(t, r.Text, text)
	assert.Equal(t, "length", finish)

	// Refused, naming the field.
	for _, tc := range []struct{ body, param string }{
		{`{"prompt":"x","echo":true}`, "echo"},
		{`{"prompt":"x","suffix":"y"}`, "suffix"},
		{`{"prompt":"x","logprobs":21}`, "logprobs"},
		{`{"prompt":"x","n":99}`, "n"},
		{`{"prompt":"x","logit_bias":{"1":-101}}`, "logit_bias"},
		{`{"prompt":[1,2,3]}`, "prompt"},
		{`{"prompt":[]}`, "prompt"},
		{`{}`, "prompt"},
		{`{"prompt":["a","b"],"stream":true}`, "prompt"},
		{`{"prompt":"x","max_tokens":0}`, "max_tokens"},
		{`{"prompt":"x","temperature":3}`, "temperature"},
	} {
		status, body := postRaw(t, s, "/v1/completions", tc.body)
		assert.Equal(t, 400, status, "%s: %s", tc.body, body)
		assert.Contains(t, body, `"param":"`+tc.param+`"`, tc.body)
	}
	// A prompt holding the projector's image marker would grow a picture.
	status, body := postRaw(t, s, "/v1/completions", `{"prompt":"look <__media__> here"}`)
	assert.Equal(t, 400, status, body)
}
