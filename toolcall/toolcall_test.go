package toolcall_test

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/vlm-go/vlm/gguf"
	"github.com/vlm-go/vlm/internal/testmodel"
	"github.com/vlm-go/vlm/llama"
	"github.com/vlm-go/vlm/sampler"
	"github.com/vlm-go/vlm/sampler/jsonschema"
	"github.com/vlm-go/vlm/template"
	"github.com/vlm-go/vlm/toolcall"
)

var weather = toolcall.Tool{Name: "get_weather", Description: "Get the weather in a city", Parameters: json.RawMessage(
	`{"type": "object", "properties": {"city": {"type": "string"}, "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]}, "days": {"type": "integer"}}, "required": ["city"]}`)}
var tagImage = toolcall.Tool{Name: "tag_image", Description: "Record tags", Parameters: json.RawMessage(
	`{"type": "object", "properties": {"tags": {"type": "array", "items": {"type": "string"}}, "confident": {"type": "boolean"}}, "required": ["tags"]}`)}
var tools = []toolcall.Tool{weather, tagImage}

func convert(schema []byte) (string, error) { return jsonschema.Grammar(schema) }

// templateFile reads a template of the template package's test data.
func templateFile(t *testing.T, rel string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "template", "testdata", rel))
	require.NoError(t, err)
	return string(b)
}

func TestDetect(t *testing.T) {
	for file, want := range map[string]string{
		"chat-templates/templates/llama-3-2-vision.jinja":  toolcall.Llama3JSON,
		"tool-templates/llama-4.jinja":                     toolcall.Llama3JSON,
		"chat-templates/templates/mistral-small-3-1.jinja": toolcall.MistralV7,
		"tool-templates/mistral-small-3-2.jinja":           toolcall.MistralV11,
		"chat-templates/templates/lfm2-vl.jinja":           toolcall.LFM2,
		"tool-templates/qwen3-5.jinja":                     toolcall.QwenXML,
		"tool-templates/gemma-4.jinja":                     toolcall.Gemma4,
		"chat-templates/templates/qwen2-vl.jinja":          toolcall.Hermes,
		"chat-templates/templates/gemma-3.jinja":           toolcall.Hermes,
		"chat-templates/templates/smolvlm.jinja":           toolcall.Hermes,
	} {
		f := toolcall.Detect(templateFile(t, file))
		assert.Equal(t, want, f.Name(), file)
		assert.Equal(t, want != toolcall.Hermes, f.Native(), file)
	}
}

// formatCase is one family's call syntax: answers its grammar must accept
// (and that parse to the calls), and answers it must refuse.
type formatCase struct {
	format string
	valid  map[string][]toolcall.Call // answer → calls
	bad    []string
}

func call(name, args string) toolcall.Call {
	return toolcall.Call{Name: name, Arguments: json.RawMessage(args)}
}

var paris = call("get_weather", `{"city":"Paris","days":3}`)
var cat = call("tag_image", `{"tags":["cat","sofa"],"confident":true}`)

var formatCases = []formatCase{
	{toolcall.Llama3JSON, map[string][]toolcall.Call{
		`{"name": "get_weather", "parameters": {"city": "Paris", "days": 3}}`:               {paris},
		`{"name": "tag_image", "parameters": {"tags": ["cat", "sofa"], "confident": true}}`: {cat},
	}, []string{
		`{"name": "get_weather", "parameters": {"days": 3}}`,
		`{"name": "get_time", "parameters": {}}`,
		`{"name": "get_weather", "parameters": {"city": "Paris", "days": "3"}}`,
		`Sure! {"name": "get_weather", "parameters": {"city": "Paris"}}`,
	}},
	{toolcall.MistralV7, map[string][]toolcall.Call{
		`[TOOL_CALLS][{"name": "get_weather", "arguments": {"city": "Paris", "days": 3}}]`:                                                                                    {paris},
		`[TOOL_CALLS] [{"name": "get_weather", "arguments": {"city": "Paris", "days": 3}}, {"name": "tag_image", "arguments": {"tags": ["cat", "sofa"], "confident": true}}]`: {paris, cat},
	}, []string{
		`[TOOL_CALLS][{"name": "get_weather", "arguments": {"unit": "celsius"}}]`,
		`[{"name": "get_weather", "arguments": {"city": "Paris"}}]`,
	}},
	{toolcall.MistralV11, map[string][]toolcall.Call{
		`[TOOL_CALLS]get_weather[ARGS]{"city": "Paris", "days": 3}`:                                                                        {paris},
		`[TOOL_CALLS]get_weather[ARGS]{"city": "Paris", "days": 3}[TOOL_CALLS]tag_image[ARGS]{"tags": ["cat", "sofa"], "confident": true}`: {paris, cat},
	}, []string{
		`[TOOL_CALLS]get_weather[ARGS]{"city": 3}`,
		`[TOOL_CALLS]get_time[ARGS]{}`,
	}},
	{toolcall.LFM2, map[string][]toolcall.Call{
		`<|tool_call_start|>[get_weather(city="Paris", days=3)]<|tool_call_end|>`:                                                 {paris},
		`<|tool_call_start|>[get_weather(city="Paris", days=3),tag_image(tags=["cat", "sofa"], confident=True)]<|tool_call_end|>`: {paris, cat},
	}, []string{
		`<|tool_call_start|>[get_weather(days=3)]<|tool_call_end|>`,
		`<|tool_call_start|>[tag_image(tags=["cat"], confident=true)]<|tool_call_end|>`,
		`[get_weather(city="Paris")]`,
	}},
	{toolcall.QwenXML, map[string][]toolcall.Call{
		"<tool_call>\n<function=get_weather>\n<parameter=city>\nParis\n</parameter>\n<parameter=days>\n3\n</parameter>\n</function>\n</tool_call>": {paris},
		"<tool_call>\n<function=get_weather>\n<parameter=city>\nParis\n</parameter>\n<parameter=days>\n3\n</parameter>\n</function>\n</tool_call>\n" +
			"<tool_call>\n<function=tag_image>\n<parameter=tags>\n[\"cat\", \"sofa\"]\n</parameter>\n<parameter=confident>\ntrue\n</parameter>\n</function>\n</tool_call>": {paris, cat},
	}, []string{
		"<tool_call>\n<function=get_weather>\n<parameter=days>\n3\n</parameter>\n</function>\n</tool_call>",
		"<tool_call>\n<function=get_weather>\n<parameter=city>\nParis\n</parameter>\n<parameter=days>\nthree\n</parameter>\n</function>\n</tool_call>",
	}},
	{toolcall.Gemma4, map[string][]toolcall.Call{
		`<|tool_call>call:get_weather{city:<|"|>Paris<|"|>,days:3}<tool_call|>`:                                                                            {paris},
		`<|tool_call>call:get_weather{city:<|"|>Paris<|"|>,days:3}<tool_call|><|tool_call>call:tag_image{tags:["cat", "sofa"],confident:true}<tool_call|>`: {paris, cat},
	}, []string{
		`<|tool_call>call:get_weather{days:3}<tool_call|>`,
		`<|tool_call>call:get_weather{city:"Paris"}<tool_call|>`,
	}},
	{toolcall.Hermes, map[string][]toolcall.Call{
		"<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Paris\", \"days\": 3}}\n</tool_call>":                                                                                                                            {paris},
		"<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Paris\", \"days\": 3}}\n</tool_call>\n<tool_call>\n{\"name\": \"tag_image\", \"arguments\": {\"tags\": [\"cat\", \"sofa\"], \"confident\": true}}\n</tool_call>": {paris, cat},
	}, []string{
		"<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {}}\n</tool_call>",
		"<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Paris\", \"extra\": 1}}\n</tool_call>",
	}},
}

func assertCalls(t *testing.T, want, got []toolcall.Call, msg string) {
	t.Helper()
	require.Len(t, got, len(want), msg)
	for i := range want {
		assert.Equal(t, want[i].Name, got[i].Name, msg)
		assert.JSONEq(t, string(want[i].Arguments), string(got[i].Arguments), msg)
		assert.Len(t, got[i].ID, 9, msg)
	}
}

func TestParse(t *testing.T) {
	for _, fc := range formatCases {
		f, err := toolcall.Named(fc.format)
		require.NoError(t, err)
		for answer, want := range fc.valid {
			content, calls, err := f.Parse(answer, tools)
			require.NoError(t, err, "%s: %q", fc.format, answer)
			assert.Empty(t, content, "%s: %q", fc.format, answer)
			assertCalls(t, want, calls, fc.format+": "+answer)
			// Text before the calls is the content.
			if f.Marker() != "" {
				content, calls, err = f.Parse("Let me check.\n"+answer, tools)
				require.NoError(t, err)
				assert.Equal(t, "Let me check.", content)
				assertCalls(t, want, calls, fc.format+": text before "+answer)
			}
		}
		content, calls, err := f.Parse("Just text, no call.", tools)
		assert.NoError(t, err)
		assert.Empty(t, calls)
		assert.Equal(t, "Just text, no call.", content)
	}
}

func TestParseArgumentsAsStrings(t *testing.T) {
	f, _ := toolcall.Named(toolcall.Hermes)
	_, calls, err := f.Parse("<tool_call>\n{\"name\": \"get_weather\", \"arguments\": \"{\\\"city\\\": \\\"Paris\\\", \\\"days\\\": 3}\"}\n</tool_call>", tools)
	require.NoError(t, err)
	assertCalls(t, []toolcall.Call{paris}, calls, "string arguments")
	// Broken calls leave the text as content, with an error.
	content, calls, err := f.Parse("<tool_call>\n{\"name\": \"get_weather\", \"argu", tools)
	assert.Error(t, err)
	assert.Empty(t, calls)
	assert.Equal(t, "<tool_call>\n{\"name\": \"get_weather\", \"argu", content)
	// Qwen XML: a string parameter stays a string even when it looks like JSON.
	q, _ := toolcall.Named(toolcall.QwenXML)
	_, calls, err = q.Parse("<tool_call>\n<function=get_weather>\n<parameter=city>\n42\n</parameter>\n</function>\n</tool_call>", tools)
	require.NoError(t, err)
	assertCalls(t, []toolcall.Call{call("get_weather", `{"city":"42"}`)}, calls, "qwen string param")
	// LFM2: Python literals with single quotes, None, nested dicts.
	l, _ := toolcall.Named(toolcall.LFM2)
	_, calls, err = l.Parse(`<|tool_call_start|>[tag_image(tags=['a "b"', 'c\'d'], meta={'k': None, "n": -1.5})]<|tool_call_end|>`, tools)
	require.NoError(t, err)
	assertCalls(t, []toolcall.Call{call("tag_image", `{"tags":["a \"b\"","c'd"],"meta":{"k":null,"n":-1.5}}`)}, calls, "lfm2 literals")
}

// grammarVocab is a tiny model whose byte tokens drive grammars byte by byte.
type grammarVocab struct {
	m     *llama.Model
	bytes [256]llama.Token
	eos   llama.Token
}

func loadGrammarVocab(t *testing.T) *grammarVocab {
	t.Helper()
	path, _ := testmodel.TinyPair(t, testmodel.ProjectorMLP, gguf.TypeF16)
	m, err := llama.Load(context.Background(), path, llama.LoadOptions{NoGPU: true})
	require.NoError(t, err)
	t.Cleanup(func() { m.Close() })
	v := m.Vocab()
	g := &grammarVocab{m: m, eos: v.EOS()}
	for i := range g.bytes {
		g.bytes[i] = -1
	}
	for tok := 0; tok < v.Size(); tok++ {
		text, err := v.Text(llama.Token(tok))
		require.NoError(t, err)
		var b int
		if n, _ := fmt.Sscanf(text, "<0x%02X>", &b); n == 1 && len(text) == 6 {
			g.bytes[b] = llama.Token(tok)
		}
	}
	for i, tok := range g.bytes {
		require.GreaterOrEqual(t, tok, llama.Token(0), "no byte token for %#x", i)
	}
	return g
}

// accepts drives the grammar over text byte by byte and then the end of
// the answer.
func (g *grammarVocab) accepts(t *testing.T, gr *toolcall.Grammar, text string) bool {
	t.Helper()
	s, err := sampler.New(g.m, sampler.Config{Grammar: gr.Text, GrammarTriggers: gr.Triggers})
	require.NoError(t, err, "grammar:\n%s", gr.Text)
	defer s.Close()
	for i := 0; i < len(text); i++ {
		if s.Accept(g.bytes[text[i]]) != nil {
			return false
		}
	}
	return s.Accept(g.eos) == nil
}

func TestGrammarAcceptsExactlyTheCalls(t *testing.T) {
	g := loadGrammarVocab(t)
	for _, fc := range formatCases {
		f, err := toolcall.Named(fc.format)
		require.NoError(t, err)
		required, err := f.Grammar(tools, toolcall.Choice{Mode: toolcall.ChoiceRequired}, true, convert)
		require.NoError(t, err)
		assert.Empty(t, required.Triggers)
		for answer, want := range fc.valid {
			if len(want) > 1 && !f.Parallel() {
				continue
			}
			assert.True(t, g.accepts(t, required, answer), "%s should accept %q\n%s", fc.format, answer, required.Text)
		}
		for _, answer := range fc.bad {
			assert.False(t, g.accepts(t, required, answer), "%s should refuse %q", fc.format, answer)
		}
		assert.False(t, g.accepts(t, required, "Hello there."), "%s: required allows no plain text", fc.format)

		// Not parallel: one call only.
		single, err := f.Grammar(tools, toolcall.Choice{Mode: toolcall.ChoiceRequired}, false, convert)
		require.NoError(t, err)
		for answer, want := range fc.valid {
			assert.Equal(t, len(want) == 1, g.accepts(t, single, answer), "%s parallel=false on %q", fc.format, answer)
		}

		// Named: only that function.
		named, err := f.Grammar(tools, toolcall.Choice{Mode: toolcall.ChoiceNamed, Name: "tag_image"}, true, convert)
		require.NoError(t, err)
		for answer, want := range fc.valid {
			onlyTags := len(want) == 1 && want[0].Name == "tag_image"
			assert.Equal(t, onlyTags, g.accepts(t, named, answer), "%s named tag_image on %q", fc.format, answer)
		}

		// Auto: text, or text and then calls (from the marker on).
		auto, err := f.Grammar(tools, toolcall.Choice{Mode: toolcall.ChoiceAuto}, true, convert)
		require.NoError(t, err)
		require.NotEmpty(t, auto.Triggers)
		assert.True(t, g.accepts(t, auto, "Hello there, no tools needed."), fc.format)
		for answer, want := range fc.valid {
			if len(want) > 1 && !f.Parallel() {
				continue
			}
			assert.True(t, g.accepts(t, auto, answer), "%s auto should accept %q", fc.format, answer)
			if f.Marker() != "" {
				assert.True(t, g.accepts(t, auto, "Let me look.\n"+answer), "%s auto with text before %q", fc.format, answer)
			}
		}
		for _, answer := range fc.bad {
			if strings.HasPrefix(answer, f.Marker()) && (f.Marker() != "" || strings.HasPrefix(answer, "{")) {
				assert.False(t, g.accepts(t, auto, answer), "%s auto should refuse %q", fc.format, answer)
			}
		}

		none, err := f.Grammar(tools, toolcall.Choice{Mode: toolcall.ChoiceNone}, true, convert)
		require.NoError(t, err)
		assert.Nil(t, none)
	}
	_, err := (&toolcall.Format{}).Grammar(tools, toolcall.Choice{Mode: toolcall.ChoiceNamed, Name: "nope"}, true, convert)
	assert.ErrorIs(t, err, toolcall.ErrInvalid)
}

func TestStreamer(t *testing.T) {
	for _, fc := range formatCases {
		f, _ := toolcall.Named(fc.format)
		for answer, want := range fc.valid {
			prefix := ""
			if f.Marker() != "" {
				prefix = "Let me look. "
			}
			full := prefix + answer
			s := f.NewStreamer(tools)
			var shown strings.Builder
			for i := 0; i < len(full); i += 3 { // 3-byte deltas cut markers apart
				shown.WriteString(s.Write(full[i:min(i+3, len(full))]))
			}
			rest, calls, err := s.Finish()
			require.NoError(t, err)
			shown.WriteString(rest)
			assert.Equal(t, strings.TrimSpace(prefix), strings.TrimSpace(shown.String()), "%s: %q", fc.format, full)
			assertCalls(t, want, calls, fc.format)
		}
		s := f.NewStreamer(tools)
		got := s.Write("Plain ") + s.Write("text.")
		rest, calls, err := s.Finish()
		assert.NoError(t, err)
		assert.Empty(t, calls)
		assert.Equal(t, "Plain text.", got+rest, fc.format)
	}
}

func TestPrepareGeneric(t *testing.T) {
	f := toolcall.Detect(templateFile(t, "chat-templates/templates/qwen2-vl.jinja"))
	msgs := []template.Message{
		template.User(template.Image(), template.Text("Weather here?")),
		toolcall.AssistantCalls("", []toolcall.Call{{ID: "abcDEF123", Name: "get_weather", Arguments: json.RawMessage(`{"city":"Paris"}`)}}),
		toolcall.Result("abcDEF123", "get_weather", `{"temp": 21}`),
	}
	out, vars := f.Prepare(msgs, tools)
	assert.Nil(t, vars)
	require.Len(t, out, 4)
	assert.Equal(t, "system", out[0].Role)
	assert.Contains(t, out[0].Content[0].Text, `{"type": "function", "function": {"name": "get_weather", "description": "Get the weather in a city", "parameters": {"type": "object", "properties": {"city": {"type": "string"}`)
	assert.Equal(t, "<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Paris\"}}\n</tool_call>", out[2].Content[0].Text)
	assert.Equal(t, "user", out[3].Role)
	assert.Equal(t, "<tool_response>\n{\"temp\": 21}\n</tool_response>", out[3].Content[0].Text)

	tmpl, err := template.Compile(templateFile(t, "chat-templates/templates/qwen2-vl.jinja"))
	require.NoError(t, err)
	text, err := tmpl.Render(out, template.Options{AddGenerationPrompt: true})
	require.NoError(t, err)
	assert.Contains(t, text, "<|im_start|>system\n# Tools\n")
	assert.Contains(t, text, "<|vision_start|><|image_pad|><|vision_end|>Weather here?")
	assert.True(t, strings.HasSuffix(text, "<|im_start|>user\n<tool_response>\n{\"temp\": 21}\n</tool_response><|im_end|>\n<|im_start|>assistant\n"), text)
}

// TestPrepareNative renders a tool conversation through each native
// template with Prepare's variables: the tools and the call appear as the
// template writes them.
func TestPrepareNative(t *testing.T) {
	for file, want := range map[string]string{
		"chat-templates/templates/llama-3-2-vision.jinja":  `{"name": "get_weather", "parameters": {"city": "Paris"}}`,
		"tool-templates/llama-4.jinja":                     `{"name": "get_weather", "parameters": {"city": "Paris"}}`,
		"chat-templates/templates/mistral-small-3-1.jinja": `[TOOL_CALLS] [{"name": "get_weather", "arguments": {"city": "Paris"}, "id": "`,
		"tool-templates/mistral-small-3-2.jinja":           `[TOOL_CALLS]get_weather[CALL_ID]`,
		"chat-templates/templates/lfm2-vl.jinja":           `<|tool_call_start|>[get_weather(city="Paris")]<|tool_call_end|>`,
		"tool-templates/qwen3-5.jinja":                     "<tool_call>\n<function=get_weather>\n<parameter=city>\nParis\n</parameter>\n</function>\n</tool_call>",
		"tool-templates/gemma-4.jinja":                     `<|tool_call>call:get_weather{city:<|"|>Paris<|"|>}<tool_call|>`,
	} {
		src := templateFile(t, file)
		f := toolcall.Detect(src)
		msgs := []template.Message{
			template.UserText("Weather in Paris?"),
			toolcall.AssistantCalls("", []toolcall.Call{{ID: "call_0001", Name: "get_weather", Arguments: json.RawMessage(`{"city":"Paris"}`)}}),
			toolcall.Result("call_0001", "get_weather", `{"temp": 21}`),
		}
		out, vars := f.Prepare(msgs, tools)
		require.Contains(t, vars, "tools", file)
		tmpl, err := template.Compile(src)
		require.NoError(t, err)
		text, err := tmpl.Render(out, template.Options{AddGenerationPrompt: true, BOSToken: "<s>", EOSToken: "</s>", Vars: vars})
		require.NoError(t, err, file)
		assert.Contains(t, text, want, file)
		assert.Contains(t, text, "tag_image", "%s: the tools are in the prompt", file)
	}
}
