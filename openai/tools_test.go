package openai_test

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"

	oa "github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/shared"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/vlm-go/vlm/openai"
	"github.com/vlm-go/vlm/pipeline"
)

var weatherTool = oa.ChatCompletionFunctionTool(shared.FunctionDefinitionParam{
	Name:        "get_weather",
	Description: oa.String("The weather in a city"),
	Parameters: shared.FunctionParameters{
		"type": "object",
		"properties": map[string]any{
			"city": map[string]any{"type": "string", "enum": []string{"Paris", "Rome"}},
			"days": map[string]any{"type": "integer"},
		},
		"required": []string{"city", "days"},
	},
})

var tagTool = oa.ChatCompletionFunctionTool(shared.FunctionDefinitionParam{
	Name: "tag_image",
	Parameters: shared.FunctionParameters{
		"type":       "object",
		"properties": map[string]any{"tag": map[string]any{"type": "string", "maxLength": 6}},
		"required":   []string{"tag"},
	},
})

// checkCall asserts that a call is one of the two tools with arguments
// its schema accepts.
func checkCall(t *testing.T, name, arguments string) {
	t.Helper()
	var args map[string]any
	require.NoError(t, json.Unmarshal([]byte(arguments), &args), "arguments %q", arguments)
	switch name {
	case "get_weather":
		assert.Contains(t, []any{"Paris", "Rome"}, args["city"])
		days, ok := args["days"].(float64)
		assert.True(t, ok && days == float64(int64(days)), "days %v", args["days"])
	case "tag_image":
		tag, ok := args["tag"].(string)
		assert.True(t, ok && len([]rune(tag)) <= 6, "tag %v", args["tag"])
	default:
		t.Fatalf("a call of %q", name)
	}
}

func toolServer(t *testing.T, templateFile string) *server {
	t.Helper()
	popts := pipeline.Options{SequenceLength: 4096, Sequences: 2}
	if templateFile != "" {
		src, err := os.ReadFile(filepath.Join("..", "template", "testdata", templateFile))
		require.NoError(t, err)
		popts.ChatTemplate = string(src)
	}
	return newServer(t, popts, openai.Options{MaxTokens: 200})
}

// TestToolsWithClient: openai-go asks for calls with a picture in the
// conversation, through the generic format (the tiny model's SmolVLM
// template ignores tools) and through a native template (Qwen3.5's XML
// calls, Gemma 4's); required and named choices force a call on the
// random-weight model, which comes back as tool_calls with
// finish_reason "tool_calls", whole and streamed.
func TestToolsWithClient(t *testing.T) {
	for name, file := range map[string]string{"generic": "", "qwen3-5": "tool-templates/qwen3-5.jinja", "gemma-4": "tool-templates/gemma-4.jinja"} {
		t.Run(name, func(t *testing.T) {
			s := toolServer(t, file)
			ctx := context.Background()
			msgs := []oa.ChatCompletionMessageParamUnion{userWithImages(t, "Tag this picture, then the weather in Rome.", 1)}

			resp, err := s.client.Chat.Completions.New(ctx, oa.ChatCompletionNewParams{
				Messages: msgs, Tools: []oa.ChatCompletionToolUnionParam{weatherTool, tagTool},
				ToolChoice:        oa.ChatCompletionToolChoiceOptionUnionParam{OfAuto: oa.String("required")},
				ParallelToolCalls: oa.Bool(false), Seed: oa.Int(3), MaxTokens: oa.Int(150),
			})
			require.NoError(t, err)
			c := resp.Choices[0]
			require.Equal(t, "tool_calls", c.FinishReason, "message %+v", c.Message)
			require.Len(t, c.Message.ToolCalls, 1)
			call := c.Message.ToolCalls[0]
			checkCall(t, call.Function.Name, call.Function.Arguments)
			assert.NotEmpty(t, call.ID)

			// The call and its result go back; the next call is named.
			msgs = append(msgs, c.Message.ToParam(), oa.ToolMessage(`{"ok": true}`, call.ID))
			stream := s.client.Chat.Completions.NewStreaming(ctx, oa.ChatCompletionNewParams{
				Messages: msgs, Tools: []oa.ChatCompletionToolUnionParam{weatherTool, tagTool},
				ToolChoice: oa.ChatCompletionToolChoiceOptionUnionParam{OfFunctionToolChoice: &oa.ChatCompletionNamedToolChoiceParam{
					Function: oa.ChatCompletionNamedToolChoiceFunctionParam{Name: "get_weather"}}},
				Seed: oa.Int(4), MaxTokens: oa.Int(150), ParallelToolCalls: oa.Bool(false),
			})
			var acc oa.ChatCompletionAccumulator
			finished := 0
			for stream.Next() {
				acc.AddChunk(stream.Current())
				if tc, ok := acc.JustFinishedToolCall(); ok {
					finished++
					assert.Equal(t, "get_weather", tc.Name)
				}
			}
			require.NoError(t, stream.Err())
			require.NoError(t, stream.Close())
			require.Len(t, acc.Choices, 1)
			assert.Equal(t, "tool_calls", acc.Choices[0].FinishReason)
			require.Len(t, acc.Choices[0].Message.ToolCalls, 1)
			got := acc.Choices[0].Message.ToolCalls[0]
			assert.Equal(t, "get_weather", got.Function.Name)
			checkCall(t, got.Function.Name, got.Function.Arguments)
			assert.Equal(t, 1, finished)
		})
	}
}

// TestToolsAutoAndNone: with tool_choice auto the random model may write
// anything; the answer is text or calls and finishes cleanly, whole and
// streamed. With none, the tools are not shown to the model.
func TestToolsAutoAndNone(t *testing.T) {
	s := toolServer(t, "")
	ctx := context.Background()
	for _, choice := range []string{"auto", "none"} {
		resp, err := s.client.Chat.Completions.New(ctx, oa.ChatCompletionNewParams{
			Messages: []oa.ChatCompletionMessageParamUnion{oa.UserMessage("Weather in Rome?")},
			Tools:    []oa.ChatCompletionToolUnionParam{weatherTool}, ToolChoice: oa.ChatCompletionToolChoiceOptionUnionParam{OfAuto: oa.String(choice)},
			MaxTokens: oa.Int(12), Temperature: oa.Float(0),
		})
		require.NoError(t, err, choice)
		c := resp.Choices[0]
		if len(c.Message.ToolCalls) == 0 {
			assert.Contains(t, []string{"stop", "length"}, c.FinishReason)
		}
		stream := s.client.Chat.Completions.NewStreaming(ctx, oa.ChatCompletionNewParams{
			Messages: []oa.ChatCompletionMessageParamUnion{oa.UserMessage("Weather in Rome?")},
			Tools:    []oa.ChatCompletionToolUnionParam{weatherTool}, ToolChoice: oa.ChatCompletionToolChoiceOptionUnionParam{OfAuto: oa.String(choice)},
			MaxTokens: oa.Int(12), Temperature: oa.Float(0),
		})
		var acc oa.ChatCompletionAccumulator
		for stream.Next() {
			acc.AddChunk(stream.Current())
		}
		require.NoError(t, stream.Err())
		// Greedy: the stream says what the whole answer said.
		assert.Equal(t, c.Message.Content, acc.Choices[0].Message.Content, choice)
		assert.Equal(t, c.FinishReason, acc.Choices[0].FinishReason, choice)
	}
}

// TestToolsRaw checks the JSON on the wire: content null with calls,
// arguments as a JSON string; the history holds parallel calls (arguments
// given as strings and as objects), their results (string and parts) and
// a picture. (How each template lays them out is checked in package
// toolcall and by the template corpus.)
func TestToolsRaw(t *testing.T) {
	s := toolServer(t, "tool-templates/qwen3-5.jinja")
	img := pngDataURL(t, 32, 32, 9)
	body := `{"messages":[
		{"role":"user","content":[{"type":"image_url","image_url":{"url":"` + img + `"}},{"type":"text","text":"Weather in both?"}]},
		{"role":"assistant","content":null,"tool_calls":[
			{"id":"call_1","type":"function","function":{"name":"get_weather","arguments":"{\"city\":\"Paris\",\"days\":1}"}},
			{"id":"call_2","type":"function","function":{"name":"get_weather","arguments":{"city":"Rome","days":2}}}]},
		{"role":"tool","tool_call_id":"call_1","content":"sunny"},
		{"role":"tool","tool_call_id":"call_2","content":[{"type":"text","text":"rain"}]},
		{"role":"user","content":"And tomorrow?"}],
		"tools":[{"type":"function","function":{"name":"get_weather","parameters":{"type":"object","properties":{"city":{"type":"string","enum":["Paris","Rome"]},"days":{"type":"integer"}},"required":["city","days"]}}}],
		"tool_choice":"required","parallel_tool_calls":false,"max_tokens":150,"seed":5}`
	code, out := s.post(t, body, testKey)
	require.Equal(t, 200, code, out)
	var resp struct {
		Choices []struct {
			FinishReason string `json:"finish_reason"`
			Message      struct {
				Content   *string `json:"content"`
				ToolCalls []struct {
					ID       string `json:"id"`
					Type     string `json:"type"`
					Function struct {
						Name      string `json:"name"`
						Arguments string `json:"arguments"`
					} `json:"function"`
				} `json:"tool_calls"`
			} `json:"message"`
		} `json:"choices"`
	}
	require.NoError(t, json.Unmarshal([]byte(out), &resp))
	c := resp.Choices[0]
	assert.Equal(t, "tool_calls", c.FinishReason)
	assert.Nil(t, c.Message.Content, "content is null when the answer is only calls: %s", out)
	require.NotEmpty(t, c.Message.ToolCalls)
	for _, tc := range c.Message.ToolCalls {
		assert.Equal(t, "function", tc.Type)
		checkCall(t, tc.Function.Name, tc.Function.Arguments)
	}
}

// TestToolsWithChoices: n choices with logprobs, each forced to a call,
// whole and streamed.
func TestToolsWithChoices(t *testing.T) {
	s := toolServer(t, "")
	ctx := context.Background()
	params := oa.ChatCompletionNewParams{
		Messages: []oa.ChatCompletionMessageParamUnion{userWithImages(t, "Weather?", 1)},
		Tools:    []oa.ChatCompletionToolUnionParam{weatherTool}, ToolChoice: oa.ChatCompletionToolChoiceOptionUnionParam{OfAuto: oa.String("required")},
		ParallelToolCalls: oa.Bool(false), N: oa.Int(2), Logprobs: oa.Bool(true), Seed: oa.Int(9), MaxTokens: oa.Int(150),
	}
	resp, err := s.client.Chat.Completions.New(ctx, params)
	require.NoError(t, err)
	require.Len(t, resp.Choices, 2)
	for _, c := range resp.Choices {
		assert.Equal(t, "tool_calls", c.FinishReason)
		require.Len(t, c.Message.ToolCalls, 1)
		checkCall(t, c.Message.ToolCalls[0].Function.Name, c.Message.ToolCalls[0].Function.Arguments)
	}
	stream := s.client.Chat.Completions.NewStreaming(ctx, params)
	var acc oa.ChatCompletionAccumulator
	for stream.Next() {
		acc.AddChunk(stream.Current())
	}
	require.NoError(t, stream.Err())
	require.Len(t, acc.Choices, 2)
	for _, c := range acc.Choices {
		assert.Equal(t, "tool_calls", c.FinishReason)
		require.Len(t, c.Message.ToolCalls, 1)
		checkCall(t, c.Message.ToolCalls[0].Function.Name, c.Message.ToolCalls[0].Function.Arguments)
	}
}
