package template

import (
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// familyPlaceholders is what each corpus family's template writes for one
// image (from the corpus README), written out here independently of
// DetectImageStyle.
var familyPlaceholders = map[string]struct {
	style       ImageStyle
	placeholder *regexp.Regexp
}{
	"smolvlm":           {StyleSmolVLM, regexp.MustCompile(regexp.QuoteMeta("<image>"))},
	"qwen2-vl":          {StyleQwen2VL, regexp.MustCompile(regexp.QuoteMeta("<|vision_start|><|image_pad|><|vision_end|>"))},
	"gemma-3":           {StyleGemma3, regexp.MustCompile(regexp.QuoteMeta("<start_of_image>"))},
	"llava-1-5":         {StyleLLaVA, regexp.MustCompile(regexp.QuoteMeta("<image>"))},
	"llama-3-2-vision":  {StyleLlama32Vision, regexp.MustCompile(regexp.QuoteMeta("<|image|>"))},
	"mistral-small-3-1": {StyleMistral3, regexp.MustCompile(regexp.QuoteMeta("[IMG]"))},
	"phi-3-vision":      {StylePhi3Vision, regexp.MustCompile(`<\|image_\d+\|>`)},
	"lfm2-vl":           {StyleLFM2VL, regexp.MustCompile(regexp.QuoteMeta("<image>"))},
}

func readCorpusTemplate(t testing.TB, family string) *Template {
	t.Helper()
	dir, why := findCorpus()
	if dir == "" {
		t.Skipf("chat-template corpus not found, skipping: %s", why)
	}
	src, err := os.ReadFile(filepath.Join(dir, "templates", family+".jinja"))
	require.NoError(t, err)
	tmpl, err := Compile(string(src))
	require.NoError(t, err)
	return tmpl
}

// conversationParts returns the conversations of conversations.json by id.
func conversationParts(t testing.TB, dir string) map[string][]Message {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(dir, "conversations.json"))
	require.NoError(t, err)
	var file struct {
		Conversations []struct {
			ID       string            `json:"id"`
			Messages []json.RawMessage `json:"messages"`
		} `json:"conversations"`
	}
	require.NoError(t, json.Unmarshal(data, &file))
	out := map[string][]Message{}
	for _, c := range file.Conversations {
		for _, raw := range c.Messages {
			out[c.ID] = append(out[c.ID], messageFromJSON(t, raw))
		}
	}
	return out
}

// TestPromptCorpus checks, for every corpus case that renders, that Prompt
// gives the expected text with each image's placeholder replaced by one
// marker, and that the markers count the image parts. Phi-3-vision cases
// are prompted from the conversation's parts (Prompt converts them the
// way the corpus did).
func TestPromptCorpus(t *testing.T) {
	dir, cases := loadCorpus(t)
	convs := conversationParts(t, dir)
	checked := 0
	for _, c := range cases {
		if c.Expected == nil {
			continue
		}
		t.Run(c.name(), func(t *testing.T) {
			fam, ok := familyPlaceholders[c.Family]
			require.True(t, ok, "no placeholder known for family %q", c.Family)
			src, err := os.ReadFile(filepath.Join(dir, c.TemplateFile))
			require.NoError(t, err)
			tmpl, err := Compile(string(src))
			require.NoError(t, err)
			assert.Equal(t, fam.style, tmpl.Style(), "detected image style")

			var msgs []Message
			if c.ContentShape == "phi3v_string" {
				msgs = convs[strings.TrimSuffix(c.ConversationID, "+tools_none")]
				require.NotEmpty(t, msgs)
			} else {
				for _, raw := range c.Messages {
					msgs = append(msgs, messageFromJSON(t, raw))
				}
			}
			for _, marker := range []string{"", "<MEDIA>"} {
				opts := caseOptions(t, c)
				opts.Marker = marker
				if marker == "" {
					marker = DefaultMarker
				}
				got, err := tmpl.Prompt(msgs, opts)
				require.NoError(t, err)
				want := fam.placeholder.ReplaceAllLiteralString(*c.Expected, marker)
				assert.Equal(t, want, got)
				assert.Equal(t, CountImages(msgs), strings.Count(got, marker))
			}
			checked++
		})
	}
	t.Logf("checked Prompt for %d corpus cases", checked)
}

// TestPromptFamilies spells out the mtmd prompt for a conversation with
// several images in one message and across messages.
func TestPromptFamilies(t *testing.T) {
	msgs := []Message{
		User(Image(), Image(), Text("Compare these.")),
		Assistant(Text("The first is larger.")),
		User(Text("And this one?"), Image()),
	}
	tests := []struct {
		family string
		opts   Options
		want   string
	}{
		{"smolvlm", Options{AddGenerationPrompt: true},
			"<|im_start|>User:<__media__><__media__>Compare these.<end_of_utterance>\nAssistant: The first is larger.<end_of_utterance>\nUser: And this one?<__media__><end_of_utterance>\nAssistant:"},
		{"qwen2-vl", Options{AddGenerationPrompt: true},
			"<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n<|im_start|>user\n<__media__><__media__>Compare these.<|im_end|>\n<|im_start|>assistant\nThe first is larger.<|im_end|>\n<|im_start|>user\nAnd this one?<__media__><|im_end|>\n<|im_start|>assistant\n"},
		{"qwen2-vl", Options{Vars: map[string]any{"add_vision_id": true}},
			"<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n<|im_start|>user\nPicture 1: <__media__>Picture 2: <__media__>Compare these.<|im_end|>\n<|im_start|>assistant\nThe first is larger.<|im_end|>\n<|im_start|>user\nAnd this one?Picture 3: <__media__><|im_end|>\n"},
		{"gemma-3", Options{AddGenerationPrompt: true, BOSToken: "<bos>"},
			"<bos><start_of_turn>user\n<__media__><__media__>Compare these.<end_of_turn>\n<start_of_turn>model\nThe first is larger.<end_of_turn>\n<start_of_turn>user\nAnd this one?<__media__><end_of_turn>\n<start_of_turn>model\n"},
		{"llava-1-5", Options{AddGenerationPrompt: true},
			"USER: <__media__>\n<__media__>\nCompare these. ASSISTANT: The first is larger. USER: <__media__>\nAnd this one? ASSISTANT:"},
		{"mistral-small-3-1", Options{AddGenerationPrompt: true, BOSToken: "<s>", EOSToken: "</s>", Now: fixedClock},
			"<s>[SYSTEM_PROMPT]" + mistralDefaultSystem + "[/SYSTEM_PROMPT][INST]<__media__><__media__>Compare these.[/INST]The first is larger.</s>[INST]And this one?<__media__>[/INST]"},
		{"phi-3-vision", Options{AddGenerationPrompt: true},
			"<|user|>\n<__media__>\n<__media__>\nCompare these.<|end|>\n<|assistant|>\nThe first is larger.<|end|>\n<|user|>\nAnd this one?<__media__>\n<|end|>\n<|assistant|>\n"},
		{"lfm2-vl", Options{AddGenerationPrompt: true, BOSToken: "<|startoftext|>"},
			"<|startoftext|><|im_start|>user\n<__media__><__media__>Compare these.<|im_end|>\n<|im_start|>assistant\nThe first is larger.<|im_end|>\n<|im_start|>user\nAnd this one?<__media__><|im_end|>\n<|im_start|>assistant\n"},
	}
	for _, tc := range tests {
		t.Run(tc.family, func(t *testing.T) {
			tmpl := readCorpusTemplate(t, tc.family)
			got, err := tmpl.Prompt(msgs, tc.opts)
			require.NoError(t, err)
			assert.Equal(t, tc.want, got)
			assert.Equal(t, 3, strings.Count(got, DefaultMarker))
		})
	}
}

// TestLlamaSystemPartsRepr: Llama 3.2 Vision prints a system message given
// as parts with Python's repr (expected string from jinja2).
func TestLlamaSystemPartsRepr(t *testing.T) {
	tmpl := readCorpusTemplate(t, "llama-3-2-vision")
	msgs := []Message{System(Text("Don't guess.")), User(Image(), Text("What is it?"))}
	got, err := tmpl.Render(msgs, Options{AddGenerationPrompt: true, BOSToken: "<|begin_of_text|>", EOSToken: "<|eot_id|>", Now: fixedClock})
	require.NoError(t, err)
	assert.Equal(t, "<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\nCutting Knowledge Date: December 2023\nToday Date: 15 Jan 2026\n\n[{'type': 'text', 'text': \"Don't guess.\"}]<|eot_id|><|start_header_id|>user<|end_header_id|>\n\n<|image|>What is it?<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n", got)
}

const mistralDefaultSystem = "You are Mistral Small 3, a Large Language Model (LLM) created by Mistral AI, a French startup headquartered in Paris.Your knowledge base was last updated on 2023-10-01. The current date is 2026-01-15.When you're not sure about some information, you say that you don't have the information and don't make up anything.If the user's question is not clear, ambiguous, or does not provide enough context for you to accurately answer the question, you do not try to answer it right away and you rather ask the user to clarify their request (e.g. \"What are some good restaurants around me?\" => \"Where are you?\" or \"When is the next flight to Tokyo\" => \"Where do you travel from?\")"

// TestPromptTextContainingPlaceholder: a user typing the family's
// placeholder gets it back as text; only the template's image becomes a
// marker.
func TestPromptTextContainingPlaceholder(t *testing.T) {
	tests := []struct {
		family string
		msgs   []Message
		want   string
	}{
		{"smolvlm", []Message{User(Image(), Text("Is <image> a tag? <image>"))},
			"<|im_start|>User:<__media__>Is <image> a tag? <image><end_of_utterance>\nAssistant:"},
		{"qwen2-vl", []Message{UserText("say <|vision_start|><|image_pad|><|vision_end|>"), AssistantText("ok"), User(Image())},
			"<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n<|im_start|>user\nsay <|vision_start|><|image_pad|><|vision_end|><|im_end|>\n<|im_start|>assistant\nok<|im_end|>\n<|im_start|>user\n<__media__><|im_end|>\n<|im_start|>assistant\n"},
		{"phi-3-vision", []Message{User(Text("What is <|image_7|>?"), Image())},
			"<|user|>\nWhat is <|image_7|>?<__media__>\n<|end|>\n<|assistant|>\n"},
		{"gemma-3", []Message{User(Text("  <start_of_image> "), Image(), Text(" x"))},
			"<start_of_turn>user\n<start_of_image><__media__>x<end_of_turn>\n<start_of_turn>model\n"},
	}
	for _, tc := range tests {
		t.Run(tc.family, func(t *testing.T) {
			tmpl := readCorpusTemplate(t, tc.family)
			got, err := tmpl.Prompt(tc.msgs, Options{AddGenerationPrompt: true})
			require.NoError(t, err)
			assert.Equal(t, tc.want, got)
			// Render still gives the template's own text, untouched.
			rendered, err := tmpl.Render(tc.msgs, Options{AddGenerationPrompt: true})
			require.NoError(t, err)
			assert.NotContains(t, rendered, DefaultMarker)
		})
	}
}

func TestPromptMarkerCountErrors(t *testing.T) {
	t.Run("marker typed in the text", func(t *testing.T) {
		tmpl := readCorpusTemplate(t, "smolvlm")
		_, err := tmpl.Prompt([]Message{User(Image(), Text("hi <__media__>"))}, Options{})
		require.ErrorIs(t, err, ErrImageCount)
		var ice *ImageCountError
		require.ErrorAs(t, err, &ice)
		assert.Equal(t, 1, ice.Images)
		assert.Equal(t, 2, ice.Markers)
		assert.Contains(t, err.Error(), "contains the media marker")
	})
	t.Run("custom marker typed in the text", func(t *testing.T) {
		tmpl := readCorpusTemplate(t, "qwen2-vl")
		_, err := tmpl.Prompt([]Message{User(Image(), Text("[[img]]"))}, Options{Marker: "[[img]]"})
		require.ErrorIs(t, err, ErrImageCount)
	})
	t.Run("template drops the image", func(t *testing.T) {
		tmpl, err := Compile("{% for m in messages %}{{ m.role }}: {% for p in m.content %}{% if p.type == 'text' %}{{ p.text }}{% endif %}{% endfor %}\n{% endfor %}")
		require.NoError(t, err)
		assert.Equal(t, StyleUnknown, tmpl.Style())
		_, err = tmpl.Prompt([]Message{User(Image(), Text("hi"))}, Options{})
		var ice *ImageCountError
		require.ErrorAs(t, err, &ice)
		assert.Equal(t, ImageCountError{Images: 1, Markers: 0, Style: "unknown", Detail: ice.Detail}, *ice)
	})
	t.Run("image in a system message printed as a repr", func(t *testing.T) {
		tmpl := readCorpusTemplate(t, "llama-3-2-vision")
		_, err := tmpl.Prompt([]Message{System(Text("sys"), Image()), User(Image(), Text("hi"))}, Options{Now: fixedClock})
		require.ErrorIs(t, err, ErrImageCount)
	})
	t.Run("placeholder written without an image", func(t *testing.T) {
		tmpl := readCorpusTemplate(t, "smolvlm")
		_, err := tmpl.Prompt([]Message{User(Text("hi"))}, Options{Style: &ImageStyle{Name: "wrong", Placeholder: "User"}})
		var ice *ImageCountError
		require.ErrorAs(t, err, &ice)
		assert.Equal(t, 0, ice.Images)
		assert.Equal(t, 1, ice.Markers)
	})
	t.Run("no images, no markers", func(t *testing.T) {
		tmpl := readCorpusTemplate(t, "gemma-3")
		got, err := tmpl.Prompt([]Message{UserText("hi")}, Options{})
		require.NoError(t, err)
		assert.Equal(t, "<start_of_turn>user\nhi<end_of_turn>\n", got)
	})
	t.Run("bad pattern", func(t *testing.T) {
		tmpl := readCorpusTemplate(t, "gemma-3")
		_, err := tmpl.Prompt([]Message{UserText("hi")}, Options{Style: &ImageStyle{Name: "bad", Pattern: "("}})
		require.Error(t, err)
		assert.Contains(t, err.Error(), `image style "bad"`)
	})
	t.Run("raise_exception passes through Prompt", func(t *testing.T) {
		tmpl := readCorpusTemplate(t, "gemma-3")
		_, err := tmpl.Prompt([]Message{User(Image()), User(Text("again"))}, Options{})
		var raise *RaiseError
		require.ErrorAs(t, err, &raise)
		assert.Equal(t, "Conversation roles must alternate user/assistant/user/assistant/...", err.Error())
	})
}

func TestPromptStyleOverrideAndMarker(t *testing.T) {
	tmpl, err := Compile("{% for m in messages %}{% for p in m.content %}{% if p.type == 'image' %}<pic>{% else %}{{ p.text }}{% endif %}{% endfor %}{% endfor %}")
	require.NoError(t, err)
	msgs := []Message{User(Image(), Text(" and "), Image())}
	got, err := tmpl.Prompt(msgs, Options{Style: &ImageStyle{Name: "pic", Placeholder: "<pic>"}, Marker: "<M>"})
	require.NoError(t, err)
	assert.Equal(t, "<M> and <M>", got)
}

func TestDetectImageStyle(t *testing.T) {
	tests := []struct {
		source string
		want   ImageStyle
	}{
		{"{{ '<|vision_start|><|image_pad|><|vision_end|>' }}", StyleQwen2VL},
		{"{{ '<start_of_image>' }}", StyleGemma3},
		{"{{ '[IMG]' }}", StyleMistral3},
		{"{{ '<|image|>' }}", StyleLlama32Vision},
		{"{{ '<image>' }}<end_of_utterance>", StyleSmolVLM},
		{"<|im_start|>{{ '<image>' }}", StyleLFM2VL},
		{"{{ message['role'].upper() }}{{ '<image>' }}", StyleLLaVA},
		{"{{ '<image>' }}", ImageStyle{Name: "image-tag", Placeholder: "<image>"}},
		{"{{ '<__media__>' }}", StyleMediaMarker},
		{"{{ '<|' + message['role'] + '|>' + message['content'] + '<|end|>' }}<|assistant|>", StylePhi3Vision},
		{"{{ messages }}", StyleUnknown},
	}
	for _, tc := range tests {
		assert.Equal(t, tc.want, DetectImageStyle(tc.source), tc.source)
	}
}

func TestFlattenImages(t *testing.T) {
	msgs := []Message{
		SystemText("sys"),
		User(Image(), Text("a"), Part{Type: "video"}, Image()),
		Assistant(Text("b")),
		User(Text("c"), Image()),
	}
	got := FlattenImages(msgs, "<|image_%d|>\n")
	assert.Equal(t, []Message{
		SystemText("sys"),
		UserText("<|image_1|>\na<|image_2|>\n"),
		AssistantText("b"),
		UserText("c<|image_3|>\n"),
	}, got)
	// The input is not modified.
	assert.Len(t, msgs[1].Content, 4)
}
