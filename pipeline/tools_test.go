package pipeline_test

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/vlm-go/vlm/internal/testmodel"
	"github.com/vlm-go/vlm/pipeline"
	"github.com/vlm-go/vlm/sampler"
	"github.com/vlm-go/vlm/sampler/jsonschema"
	"github.com/vlm-go/vlm/template"
	"github.com/vlm-go/vlm/toolcall"
)

func schemaGrammar(schema []byte) (string, error) { return jsonschema.Grammar(schema) }

var pipelineTools = []toolcall.Tool{
	{Name: "get_weather", Description: "Weather in a city", Parameters: json.RawMessage(
		`{"type": "object", "properties": {"city": {"type": "string", "enum": ["Paris", "Rome"]}, "days": {"type": "integer", "minimum": 1, "maximum": 7}}, "required": ["city", "days"]}`)},
	{Name: "tag_image", Description: "Tag the picture", Parameters: json.RawMessage(
		`{"type": "object", "properties": {"tag": {"type": "string", "maxLength": 6}}, "required": ["tag"]}`)},
}

// TestToolCallsThroughTemplates answers a conversation with a picture and
// an earlier call and result, through the generic format (the tiny
// model's own template) and the native templates of the tool-taking
// families: a required or named choice forces a call, which comes back
// parsed.
func TestToolCallsThroughTemplates(t *testing.T) {
	templates := map[string]string{"smolvlm (generic)": ""}
	for name, file := range map[string]string{
		"llama-3-2-vision":  "chat-templates/templates/llama-3-2-vision.jinja",
		"mistral-small-3-1": "chat-templates/templates/mistral-small-3-1.jinja",
		"lfm2-vl":           "chat-templates/templates/lfm2-vl.jinja",
		"llama-4":           "tool-templates/llama-4.jinja",
		"mistral-small-3-2": "tool-templates/mistral-small-3-2.jinja",
		"qwen3-5":           "tool-templates/qwen3-5.jinja",
		"gemma-4":           "tool-templates/gemma-4.jinja",
	} {
		src, err := os.ReadFile(filepath.Join("..", "template", "testdata", file))
		require.NoError(t, err)
		templates[name] = string(src)
	}
	for name, src := range templates {
		t.Run(name, func(t *testing.T) {
			p, _, _ := newPipeline(t, testmodel.ProjectorIdefics3, pipeline.Options{ChatTemplate: src, SequenceLength: 4096})
			in := pipeline.Input{
				Messages: []template.Message{
					// Llama 4 puts the tools into the first user message as
					// text (a picture there would print as a Python list).
					template.UserText("Hi!"),
					template.AssistantText("Hello!"),
					template.User(template.Image(), template.Text("Tag this, then the weather in Rome.")),
					toolcall.AssistantCalls("", []toolcall.Call{{ID: "abcDEF123", Name: "tag_image", Arguments: json.RawMessage(`{"tag":"cat"}`)}}),
					toolcall.Result("abcDEF123", "tag_image", "stored"),
				},
				Images: []pipeline.Image{pipeline.ImageOf(picture(40, 30, 80))},
			}
			// Required for half the families, named for the others (a run
			// takes seconds on a busy machine).
			choice := toolcall.Choice{Mode: toolcall.ChoiceRequired}
			if len(name)%2 == 0 {
				choice = toolcall.Choice{Mode: toolcall.ChoiceNamed, Name: "get_weather"}
			}
			{
				resp, err := p.Run(context.Background(), in, pipeline.GenerateOptions{
					MaxTokens: 200, Sampler: sampler.Config{Temperature: 1, Seed: 7},
					// One call: parallel calls on a random model go on until
					// MaxTokens cuts one in half (the toolcall tests check
					// parallel grammars).
					Tools: &pipeline.ToolOptions{Tools: pipelineTools, Choice: choice, Converter: schemaGrammar, NoParallel: true},
				})
				require.NoError(t, err)
				require.NoError(t, resp.ToolParseError, "answer %q", resp.Text)
				require.NotEmpty(t, resp.ToolCalls, "answer %q", resp.Text)
				assert.Contains(t, resp.Prompt, "get_weather", "the tools are in the prompt")
				for _, c := range resp.ToolCalls {
					var args map[string]any
					require.NoError(t, json.Unmarshal(c.Arguments, &args))
					switch c.Name {
					case "get_weather":
						assert.Contains(t, []any{"Paris", "Rome"}, args["city"])
						days, ok := args["days"].(float64)
						assert.True(t, ok && days == float64(int64(days)) && days >= 1 && days <= 7, "days %v", args["days"])
					case "tag_image":
						require.Equal(t, toolcall.ChoiceRequired, choice.Mode)
						assert.IsType(t, "", args["tag"])
					default:
						t.Fatalf("call of %q", c.Name)
					}
					assert.Len(t, c.ID, 9)
				}
			}
			// Auto on a random model: whatever it writes, the answer is
			// text or calls, never an error.
			_, err := p.Run(context.Background(), in, pipeline.GenerateOptions{
				MaxTokens: 16, Tools: &pipeline.ToolOptions{Tools: pipelineTools, Converter: schemaGrammar},
			})
			require.NoError(t, err)
		})
	}
}
