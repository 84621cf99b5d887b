package openai_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"hash/crc32"
	"image"
	"image/color"
	"image/png"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"unicode/utf8"

	oa "github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/option"
	"github.com/openai/openai-go/v3/shared"
	"github.com/santhosh-tekuri/jsonschema/v6"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/vlm-go/vlm/gguf"
	"github.com/vlm-go/vlm/internal/testmodel"
	"github.com/vlm-go/vlm/openai"
	"github.com/vlm-go/vlm/pipeline"
)

const testKey = "test-key"

// server is a handler over a tiny pipeline, behind httptest.
type server struct {
	p      *pipeline.Pipeline
	h      *openai.Handler
	srv    *httptest.Server
	client oa.Client
}

func newServer(t testing.TB, popts pipeline.Options, hopts openai.Options) *server {
	t.Helper()
	mp, pp := testmodel.TinyPair(t, testmodel.ProjectorIdefics3, gguf.TypeF16)
	if popts.Threads == 0 {
		popts.Threads = 1
	}
	if popts.SequenceLength == 0 {
		popts.SequenceLength = 1024
	}
	p, err := pipeline.New(context.Background(), mp, pp, popts)
	require.NoError(t, err)
	if hopts.APIKey == "" {
		hopts.APIKey = testKey
	}
	h := openai.NewHandler(p, hopts)
	srv := httptest.NewServer(h)
	t.Cleanup(func() { srv.Close(); p.Close() })
	c := oa.NewClient(option.WithBaseURL(srv.URL+"/v1/"), option.WithAPIKey(testKey), option.WithMaxRetries(0))
	return &server{p: p, h: h, srv: srv, client: c}
}

func pngDataURL(t testing.TB, w, h int, shade uint8) string {
	t.Helper()
	img := image.NewNRGBA(image.Rect(0, 0, w, h))
	for y := 0; y < h; y++ {
		for x := 0; x < w; x++ {
			img.SetNRGBA(x, y, color.NRGBA{uint8(x * 255 / w), shade, uint8(y * 255 / h), 255})
		}
	}
	var buf bytes.Buffer
	require.NoError(t, png.Encode(&buf, img))
	return "data:image/png;base64," + base64.StdEncoding.EncodeToString(buf.Bytes())
}

func userWithImages(t testing.TB, text string, n int) oa.ChatCompletionMessageParamUnion {
	parts := []oa.ChatCompletionContentPartUnionParam{}
	for i := range n {
		parts = append(parts, oa.ImageContentPart(oa.ChatCompletionContentPartImageImageURLParam{URL: pngDataURL(t, 32+8*i, 32, uint8(50*i))}))
	}
	parts = append(parts, oa.TextContentPart(text))
	return oa.UserMessage(parts)
}

// TestChatWithClient drives the handler with the openai-go client:
// answers with 0, 1 and 3 images, usage and finish reasons, and the same
// greedy answer streamed.
func TestChatWithClient(t *testing.T) {
	s := newServer(t, pipeline.Options{Sequences: 2}, openai.Options{})
	ctx := context.Background()
	prompt := int64(0)
	for _, n := range []int{0, 1, 3} {
		params := oa.ChatCompletionNewParams{
			Model:       "whatever",
			Messages:    []oa.ChatCompletionMessageParamUnion{oa.SystemMessage("Be brief."), userWithImages(t, "What is here?", n)},
			MaxTokens:   oa.Int(6),
			Temperature: oa.Float(0),
		}
		c, err := s.client.Chat.Completions.New(ctx, params)
		require.NoError(t, err, "%d images", n)
		require.Len(t, c.Choices, 1)
		ch := c.Choices[0]
		assert.Equal(t, "assistant", string(ch.Message.Role))
		assert.Contains(t, []string{"stop", "length"}, ch.FinishReason)
		if ch.FinishReason == "length" {
			assert.EqualValues(t, 6, c.Usage.CompletionTokens)
		}
		assert.Greater(t, c.Usage.PromptTokens, prompt, "%d images make a longer prompt", n)
		prompt = c.Usage.PromptTokens
		assert.Equal(t, c.Usage.PromptTokens+c.Usage.CompletionTokens, c.Usage.TotalTokens)
		assert.True(t, strings.HasPrefix(c.ID, "chatcmpl-"))

		params.StreamOptions = oa.ChatCompletionStreamOptionsParam{IncludeUsage: oa.Bool(true)}
		st := s.client.Chat.Completions.NewStreaming(ctx, params)
		var text strings.Builder
		finish := ""
		var usage oa.CompletionUsage
		for st.Next() {
			chunk := st.Current()
			for _, c := range chunk.Choices {
				text.WriteString(c.Delta.Content)
				if c.FinishReason != "" {
					finish = c.FinishReason
				}
			}
			if chunk.Usage.TotalTokens > 0 {
				usage = chunk.Usage
			}
		}
		require.NoError(t, st.Err())
		assert.Equal(t, ch.Message.Content, text.String(), "%d images: streamed greedy answer equals the whole one", n)
		assert.Equal(t, ch.FinishReason, finish)
		assert.Equal(t, c.Usage.TotalTokens, usage.TotalTokens)
	}
	models, err := s.client.Models.List(ctx)
	require.NoError(t, err)
	require.Len(t, models.Data, 1)
	assert.Contains(t, models.Data[0].ID, "tiny-idefics3")
}

// TestJSONSchemaAnswersValidate: under a json_schema response format every
// answer, for every schema kind sampler/jsonschema supports, across
// temperatures and seeds, parses and validates against the schema (four
// requests at a time, so the engine batches them).
func TestJSONSchemaAnswersValidate(t *testing.T) {
	s := newServer(t, pipeline.Options{Sequences: 4}, openai.Options{})
	schemas := []string{
		`{"type":"object","properties":{"name":{"type":"string","maxLength":12},"age":{"type":"integer","minimum":0,"maximum":120},"score":{"type":"number","minimum":0,"maximum":1},
		  "ok":{"type":"boolean"},"kind":{"enum":["cat","dog",3,null]},"fixed":{"const":"v1"},
		  "tags":{"type":"array","items":{"type":"string","maxLength":4},"minItems":1,"maxItems":3},"when":{"type":"string","format":"date"},"id":{"type":"string","format":"uuid"},
		  "either":{"anyOf":[{"type":"null"},{"$ref":"#/$defs/point"}]}},
		 "required":["name","age","score","kind","fixed","tags","either"],
		 "$defs":{"point":{"type":"object","properties":{"x":{"type":"integer","exclusiveMinimum":-10,"exclusiveMaximum":10},"y":{"type":"integer"}},"required":["x","y"]}}}`,
		`{"type":"object","properties":{"name":{"type":"string","maxLength":20}},"required":["name"],"additionalProperties":false}`,
		`{"type":"object","properties":{"code":{"type":"string","pattern":"^[A-Z]{2}-\\d{3}$"},"word":{"type":"string","pattern":"cat","maxLength":8},"at":{"type":"string","format":"date-time"},"t":{"type":"string","format":"time"}},"required":["code","word","at","t"]}`,
		`{"type":"object","properties":{"a":{"type":"integer","minimum":-5,"maximum":5},"b":{"type":"number","exclusiveMinimum":-1.5,"maximum":2.25}},"anyOf":[{"required":["a"]},{"required":["b"]}],"additionalProperties":false}`,
		`{"type":"object","required":["id"],"additionalProperties":{"type":"string","minLength":1,"maxLength":3}}`,
		`{"oneOf":[{"type":"object","properties":{"kind":{"const":"circle"},"r":{"type":"number","exclusiveMinimum":0,"maximum":10}},"required":["kind","r"],"additionalProperties":false},{"type":"object","properties":{"kind":{"const":"square"},"side":{"type":"integer","minimum":1,"maximum":5}},"required":["kind","side"],"additionalProperties":false}]}`,
		`{"type":"array","prefixItems":[{"type":"string","maxLength":3},{"enum":[1,"two",false]}],"items":false,"minItems":1}`,
	}
	type draw struct {
		temp float64
		seed int64
	}
	draws := []draw{{0, 1}, {0.8, 1}, {0.8, 2}, {1.5, 1}, {1.5, 2}, {1.5, 3}}
	ctx := context.Background()
	for i, src := range schemas {
		validator := compileSchema(t, src)
		var mu sync.Mutex
		var wg sync.WaitGroup
		results := map[draw]string{}
		errs := map[draw]error{}
		finish := map[draw]string{}
		for _, d := range draws {
			wg.Add(1)
			go func() {
				defer wg.Done()
				c, err := s.client.Chat.Completions.New(ctx, oa.ChatCompletionNewParams{
					Messages:    []oa.ChatCompletionMessageParamUnion{oa.UserMessage("Give me a record.")},
					MaxTokens:   oa.Int(600),
					Temperature: oa.Float(d.temp),
					Seed:        oa.Int(d.seed),
					ResponseFormat: oa.ChatCompletionNewParamsResponseFormatUnion{OfJSONSchema: &shared.ResponseFormatJSONSchemaParam{
						JSONSchema: shared.ResponseFormatJSONSchemaJSONSchemaParam{Name: "record", Schema: json.RawMessage(src)},
					}},
				})
				mu.Lock()
				defer mu.Unlock()
				errs[d] = err
				if err == nil {
					results[d], finish[d] = c.Choices[0].Message.Content, string(c.Choices[0].FinishReason)
				}
			}()
		}
		wg.Wait()
		for _, d := range draws {
			require.NoError(t, errs[d], "schema %d", i)
			out := results[d]
			where := fmt.Sprintf("schema %d, temperature %v, seed %d: %q", i, d.temp, d.seed, out)
			require.Equal(t, "stop", finish[d], where)
			require.True(t, utf8.ValidString(out), where)
			var v any
			require.NoError(t, json.Unmarshal([]byte(out), &v), where)
			require.NoError(t, validator.Validate(v), where)
		}
	}
	// json_object: any JSON object.
	c, err := s.client.Chat.Completions.New(ctx, oa.ChatCompletionNewParams{
		Messages:       []oa.ChatCompletionMessageParamUnion{oa.UserMessage("JSON please.")},
		MaxTokens:      oa.Int(300),
		Temperature:    oa.Float(0),
		ResponseFormat: oa.ChatCompletionNewParamsResponseFormatUnion{OfJSONObject: &shared.ResponseFormatJSONObjectParam{}},
	})
	require.NoError(t, err)
	out := c.Choices[0].Message.Content
	switch c.Choices[0].FinishReason {
	case "stop": // a whole object
		var obj map[string]any
		require.NoError(t, json.Unmarshal([]byte(out), &obj), "%q", out)
	case "length": // a prefix of one: every token read so far is valid JSON
		require.True(t, strings.HasPrefix(strings.TrimLeft(out, " \t\n\r"), "{"), "%q", out)
		d := json.NewDecoder(strings.NewReader(out))
		for {
			_, err := d.Token()
			if err == io.EOF || errors.Is(err, io.ErrUnexpectedEOF) {
				break
			}
			require.NoError(t, err, "not a prefix of a JSON object: %q", out)
		}
	default:
		t.Fatalf("finish reason %q: %q", c.Choices[0].FinishReason, out)
	}
}

// TestErrorsThroughClient: the client sees OpenAI-shaped errors with their
// status.
func TestErrorsThroughClient(t *testing.T) {
	s := newServer(t, pipeline.Options{SequenceLength: 128}, openai.Options{MaxTokens: 64})
	ctx := context.Background()
	_, err := s.client.Chat.Completions.New(ctx, oa.ChatCompletionNewParams{
		Messages: []oa.ChatCompletionMessageParamUnion{oa.UserMessage(strings.Repeat("long words ", 200))}, MaxTokens: oa.Int(4),
	})
	var apiErr *oa.Error
	require.True(t, errors.As(err, &apiErr), "%v", err)
	assert.Equal(t, 400, apiErr.StatusCode)
	assert.Equal(t, "context_length_exceeded", apiErr.Code)

	bad := oa.NewClient(option.WithBaseURL(s.srv.URL+"/v1/"), option.WithAPIKey("wrong"), option.WithMaxRetries(0))
	_, err = bad.Chat.Completions.New(ctx, oa.ChatCompletionNewParams{Messages: []oa.ChatCompletionMessageParamUnion{oa.UserMessage("hi")}})
	require.True(t, errors.As(err, &apiErr), "%v", err)
	assert.Equal(t, 401, apiErr.StatusCode)
	assert.Equal(t, "invalid_api_key", apiErr.Code)

	_, err = s.client.Chat.Completions.New(ctx, oa.ChatCompletionNewParams{
		Messages: []oa.ChatCompletionMessageParamUnion{oa.UserMessage("hi")}, N: oa.Int(2),
	})
	require.True(t, errors.As(err, &apiErr), "%v", err)
	assert.Equal(t, 400, apiErr.StatusCode)
	assert.Equal(t, "n", apiErr.Param)
}

// post sends a raw body to the chat endpoint.
func (s *server) post(t testing.TB, body string, key string) (int, string) {
	t.Helper()
	req, err := http.NewRequest("POST", s.srv.URL+"/v1/chat/completions", strings.NewReader(body))
	require.NoError(t, err)
	if key != "" {
		req.Header.Set("Authorization", "Bearer "+key)
	}
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(data)
}

func truncatedPNG(t testing.TB) string {
	u := pngDataURL(t, 32, 32, 1)
	raw, _ := base64.StdEncoding.DecodeString(strings.TrimPrefix(u, "data:image/png;base64,"))
	return "data:image/png;base64," + base64.StdEncoding.EncodeToString(raw[:len(raw)/2])
}

// hugeHeaderPNG is a PNG header claiming 20000×20000 pixels.
func hugeHeaderPNG() string {
	var b bytes.Buffer
	b.WriteString("\x89PNG\r\n\x1a\n")
	chunk := []byte{'I', 'H', 'D', 'R', 0, 0, 0x4e, 0x20, 0, 0, 0x4e, 0x20, 8, 2, 0, 0, 0}
	b.Write([]byte{0, 0, 0, 13})
	b.Write(chunk)
	b.Write(binary.BigEndian.AppendUint32(nil, crc32.ChecksumIEEE(chunk)))
	return "data:image/png;base64," + base64.StdEncoding.EncodeToString(b.Bytes())
}

// TestMalformedRequests: each malformed request gets its 4xx with a useful
// message; afterwards the server answers a normal request with the same
// tokens as before.
func TestMalformedRequests(t *testing.T) {
	s := newServer(t, pipeline.Options{SequenceLength: 512}, openai.Options{MaxTokens: 256, MaxImages: 3, MaxBodyBytes: 1 << 20})
	normal := `{"messages":[{"role":"user","content":[{"type":"image_url","image_url":{"url":"` + pngDataURL(t, 32, 32, 7) + `"}},{"type":"text","text":"What?"}]}],"max_tokens":8,"temperature":0}`
	code, before := s.post(t, normal, testKey)
	require.Equal(t, 200, code, before)
	msg := func(content string) string { return `{"messages":[{"role":"user","content":` + content + `}]}` }
	img := func(url string) string {
		return msg(`[{"type":"image_url","image_url":{"url":"` + url + `"}},{"type":"text","text":"x"}]`)
	}
	cases := []struct {
		name, body, key string
		status          int
		want            string
	}{
		{"empty body", ``, testKey, 400, "not valid JSON"},
		{"bad JSON", `{"messages":`, testKey, 400, "not valid JSON"},
		{"not an object", `[1,2]`, testKey, 400, "JSON"},
		{"two values", `{"messages":[{"role":"user","content":"a"}]} {}`, testKey, 400, "more than one"},
		{"messages wrong type", `{"messages":"hi"}`, testKey, 400, "messages"},
		{"no messages", `{"messages":[]}`, testKey, 400, "at least one message"},
		{"missing messages", `{"model":"x"}`, testKey, 400, "at least one message"},
		{"unknown role", `{"messages":[{"role":"robot","content":"a"}]}`, testKey, 400, "unknown role"},
		{"no role", `{"messages":[{"content":"a"}]}`, testKey, 400, "no role"},
		{"function role", `{"messages":[{"role":"function","content":"a"}]}`, testKey, 400, "not supported"},
		{"null content", msg(`null`), testKey, 400, "no content"},
		{"number content", msg(`42`), testKey, 400, "string or an array"},
		{"empty parts", msg(`[]`), testKey, 400, "empty array"},
		{"part without type", msg(`[{"text":"a"}]`), testKey, 400, "no type"},
		{"audio part", msg(`[{"type":"input_audio","input_audio":{"data":"AA=="}}]`), testKey, 400, "not supported"},
		{"image without url", msg(`[{"type":"image_url"}]`), testKey, 400, "image_url.url"},
		{"bad base64", img(`data:image/png;base64,@@@@`), testKey, 400, "base64"},
		{"data url without comma", img(`data:image/png;base64`), testKey, 400, "comma"},
		{"non-image bytes", img(`data:image/png;base64,` + base64.StdEncoding.EncodeToString([]byte("hello, not a picture at all"))), testKey, 400, "image"},
		{"truncated PNG", img(truncatedPNG(t)), testKey, 400, "image"},
		{"20000x20000 header", img(hugeHeaderPNG()), testKey, 413, "too large"},
		{"remote image off", img(`https://example.com/cat.png`), testKey, 400, "remote images are off"},
		{"ftp url", img(`ftp://example.com/cat.png`), testKey, 400, "data: URL"},
		{"too many images", msg(`[` + strings.Repeat(`{"type":"image_url","image_url":{"url":"`+pngDataURL(t, 8, 8, 1)+`"}},`, 4) + `{"type":"text","text":"x"}]`), testKey, 400, "more than 3 images"},
		{"image in system", `{"messages":[{"role":"system","content":[{"type":"image_url","image_url":{"url":"` + pngDataURL(t, 8, 8, 1) + `"}}]},{"role":"user","content":"a"}]}`, testKey, 400, "only accepted in user"},
		{"negative max_tokens", `{"messages":[{"role":"user","content":"a"}],"max_tokens":-1}`, testKey, 400, "max_tokens"},
		{"zero max_tokens", `{"messages":[{"role":"user","content":"a"}],"max_tokens":0}`, testKey, 400, "max_tokens"},
		{"huge max_tokens", `{"messages":[{"role":"user","content":"a"}],"max_tokens":100000000}`, testKey, 400, "between 1 and 256"},
		{"max_tokens string", `{"messages":[{"role":"user","content":"a"}],"max_tokens":"5"}`, testKey, 400, "max_tokens"},
		{"huge max_completion_tokens", `{"messages":[{"role":"user","content":"a"}],"max_completion_tokens":1000}`, testKey, 400, "max_completion_tokens"},
		{"temperature high", `{"messages":[{"role":"user","content":"a"}],"temperature":5}`, testKey, 400, "temperature"},
		{"top_p zero", `{"messages":[{"role":"user","content":"a"}],"top_p":0}`, testKey, 400, "top_p"},
		{"stop wrong type", `{"messages":[{"role":"user","content":"a"}],"stop":5}`, testKey, 400, "stop"},
		{"too many stops", `{"messages":[{"role":"user","content":"a"}],"stop":["a","b","c","d","e"]}`, testKey, 400, "at most 4"},
		{"n 3", `{"messages":[{"role":"user","content":"a"}],"n":3}`, testKey, 400, "n = 3: between 1 and"},
		{"n 0", `{"messages":[{"role":"user","content":"a"}],"n":0}`, testKey, 400, "n = 0"},
		{"top_logprobs 21", `{"messages":[{"role":"user","content":"a"}],"logprobs":true,"top_logprobs":21}`, testKey, 400, "between 0 and 20"},
		{"top_logprobs alone", `{"messages":[{"role":"user","content":"a"}],"top_logprobs":2}`, testKey, 400, "needs logprobs"},
		{"logit_bias key", `{"messages":[{"role":"user","content":"a"}],"logit_bias":{"x":10}}`, testKey, 400, "a token id between 0 and"},
		{"logit_bias id", `{"messages":[{"role":"user","content":"a"}],"logit_bias":{"99999999":10}}`, testKey, 400, "a token id between 0 and"},
		{"logit_bias value", `{"messages":[{"role":"user","content":"a"}],"logit_bias":{"5":101}}`, testKey, 400, "between -100 and 100"},
		{"logit_bias array", `{"messages":[{"role":"user","content":"a"}],"logit_bias":[5]}`, testKey, 400, "logit_bias must be an object"},
		{"tool type", `{"messages":[{"role":"user","content":"a"}],"tools":[{"type":"retrieval"}]}`, testKey, 400, "only \"function\""},
		{"tools not an array", `{"messages":[{"role":"user","content":"a"}],"tools":{"type":"function"}}`, testKey, 400, "tools must be an array"},
		{"tool without name", `{"messages":[{"role":"user","content":"a"}],"tools":[{"type":"function","function":{"description":"x"}}]}`, testKey, 400, "no name"},
		{"two tools one name", `{"messages":[{"role":"user","content":"a"}],"tools":[{"type":"function","function":{"name":"f"}},{"type":"function","function":{"name":"f"}}]}`, testKey, 400, "two tools"},
		{"tool schema refused", `{"messages":[{"role":"user","content":"a"}],"tools":[{"type":"function","function":{"name":"f","parameters":{"type":"object","properties":{"x":{"not":{}}}}}}]}`, testKey, 400, "not"},
		{"tool_choice unknown", `{"messages":[{"role":"user","content":"a"}],"tools":[{"type":"function","function":{"name":"f"}}],"tool_choice":"always"}`, testKey, 400, "tool_choice"},
		{"tool_choice names another", `{"messages":[{"role":"user","content":"a"}],"tools":[{"type":"function","function":{"name":"f"}}],"tool_choice":{"type":"function","function":{"name":"g"}}}`, testKey, 400, "not among the tools"},
		{"tool_choice required without tools", `{"messages":[{"role":"user","content":"a"}],"tool_choice":"required"}`, testKey, 400, "no tools"},
		{"tool_calls not an array", `{"messages":[{"role":"user","content":"a"},{"role":"assistant","content":null,"tool_calls":{"id":"x"}},{"role":"tool","tool_call_id":"x","content":"1"}]}`, testKey, 400, "tool_calls must be an array"},
		{"tool call without name", `{"messages":[{"role":"user","content":"a"},{"role":"assistant","content":null,"tool_calls":[{"id":"x","type":"function","function":{"arguments":"{}"}}]},{"role":"tool","tool_call_id":"x","content":"1"}]}`, testKey, 400, "no function name"},
		{"tools with response_format", `{"messages":[{"role":"user","content":"a"}],"tools":[{"type":"function","function":{"name":"f"}}],"response_format":{"type":"json_object"}}`, testKey, 400, "response_format"},
		{"bad response_format", `{"messages":[{"role":"user","content":"a"}],"response_format":{"type":"xml"}}`, testKey, 400, "response_format"},
		{"schema missing", `{"messages":[{"role":"user","content":"a"}],"response_format":{"type":"json_schema","json_schema":{"name":"x"}}}`, testKey, 400, "needs a schema"},
		{"schema not a schema", `{"messages":[{"role":"user","content":"a"}],"response_format":{"type":"json_schema","json_schema":{"name":"x","schema":{"type":"banana"}}}}`, testKey, 400, "unknown type"},
		{"schema is a number", `{"messages":[{"role":"user","content":"a"}],"response_format":{"type":"json_schema","json_schema":{"name":"x","schema":7}}}`, testKey, 400, "an object or a boolean"},
		{"schema bad ref", `{"messages":[{"role":"user","content":"a"}],"response_format":{"type":"json_schema","json_schema":{"name":"x","schema":{"$ref":"#/nowhere"}}}}`, testKey, 400, "does not resolve"},
		{"schema pattern", `{"messages":[{"role":"user","content":"a"}],"response_format":{"type":"json_schema","json_schema":{"name":"x","schema":{"type":"string","pattern":"(?=a)"}}}}`, testKey, 400, `"pattern"`},
		{"schema multipleOf", `{"messages":[{"role":"user","content":"a"}],"response_format":{"type":"json_schema","json_schema":{"name":"x","schema":{"type":"object","properties":{"n":{"type":"integer","multipleOf":3}}}}}}`, testKey, 400, `"multipleOf": not supported`},
		{"schema refused keyword", `{"messages":[{"role":"user","content":"a"}],"response_format":{"type":"json_schema","json_schema":{"name":"x","schema":{"type":"string","not":{"const":"a"}}}}}`, testKey, 400, "not"},
		{"last is assistant", `{"messages":[{"role":"user","content":"a"},{"role":"assistant","content":"b"}]}`, testKey, 400, "assistant"},
		{"marker in text", msg(`"look <__media__> here"`), testKey, 400, "reads as an image"},
		{"prompt too long", msg(`"` + strings.Repeat("many words ", 400) + `"`), testKey, 400, "context"},
		{"huge body", `{"messages":[{"role":"user","content":"` + strings.Repeat("a", 2<<20) + `"}]}`, testKey, 413, "larger than"},
		{"no key", msg(`"a"`), "", 401, "API key"},
		{"wrong key", msg(`"a"`), "nope", 401, "API key"},
	}
	require.GreaterOrEqual(t, len(cases), 40)
	for _, c := range cases {
		code, body := s.post(t, c.body, c.key)
		assert.Equal(t, c.status, code, "%s: %s", c.name, body)
		var e struct {
			Error struct {
				Message string `json:"message"`
				Type    string `json:"type"`
			} `json:"error"`
		}
		if assert.NoError(t, json.Unmarshal([]byte(body), &e), "%s: %s", c.name, body) {
			assert.Contains(t, e.Error.Message, c.want, c.name)
			assert.NotEmpty(t, e.Error.Type, c.name)
		}
	}
	code, after := s.post(t, normal, testKey)
	require.Equal(t, 200, code, after)
	assert.Equal(t, content(t, before), content(t, after), "the same answer as before the malformed requests")
}

func content(t testing.TB, body string) string {
	var r struct {
		Choices []struct {
			Message struct {
				Content string `json:"content"`
			} `json:"message"`
		} `json:"choices"`
	}
	require.NoError(t, json.Unmarshal([]byte(body), &r), body)
	require.Len(t, r.Choices, 1)
	return r.Choices[0].Message.Content
}

func compileSchema(t testing.TB, schema string) *jsonschema.Schema {
	t.Helper()
	doc, err := jsonschema.UnmarshalJSON(strings.NewReader(schema))
	require.NoError(t, err)
	c := jsonschema.NewCompiler()
	c.AssertFormat()
	require.NoError(t, c.AddResource("schema.json", doc))
	s, err := c.Compile("schema.json")
	require.NoError(t, err)
	return s
}
