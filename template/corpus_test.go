package template

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// corpusEnv names the folder of the chat-template corpus (the folder with
// cases.json), overriding the search.
const corpusEnv = "VLM_CHAT_TEMPLATES"

// corpusDate is the fixed clock the corpus was rendered with.
var corpusDate = time.Date(2026, 1, 15, 0, 0, 0, 0, time.UTC)

// corpusRan and corpusPassed count corpus cases for TestMain's summary.
var corpusRan, corpusPassed atomic.Int64

// findCorpus returns the corpus folder, or "" and why it was not found.
func findCorpus() (string, string) {
	if dir := os.Getenv(corpusEnv); dir != "" {
		if _, err := os.Stat(filepath.Join(dir, "cases.json")); err != nil {
			return "", fmt.Sprintf("%s=%q but %v", corpusEnv, dir, err)
		}
		return dir, ""
	}
	wd, err := os.Getwd()
	if err != nil {
		return "", err.Error()
	}
	for dir := wd; ; dir = filepath.Dir(dir) {
		// The corpus lives in shared/chat-templates beside (a parent of)
		// the repository checkout, or inside it.
		cand := filepath.Join(dir, "shared", "chat-templates")
		if _, err := os.Stat(filepath.Join(cand, "cases.json")); err == nil {
			return cand, ""
		}
		if filepath.Dir(dir) == dir {
			break
		}
	}
	return "", fmt.Sprintf("no shared/chat-templates/cases.json in %s or any parent folder, and %s is not set", wd, corpusEnv)
}

type corpusCase struct {
	Family              string            `json:"family"`
	TemplateFile        string            `json:"template_file"`
	ConversationID      string            `json:"conversation_id"`
	ContentShape        string            `json:"content_shape"`
	AddGenerationPrompt bool              `json:"add_generation_prompt"`
	Variables           json.RawMessage   `json:"variables"`
	Messages            []json.RawMessage `json:"messages"`
	Expected            *string           `json:"expected"`
	ExpectedError       *string           `json:"expected_error"`
}

func (c corpusCase) name() string {
	return fmt.Sprintf("%s/%s/gen=%v", c.Family, c.ConversationID, c.AddGenerationPrompt)
}

func loadCorpus(t testing.TB) (string, []corpusCase) {
	t.Helper()
	dir, why := findCorpus()
	if dir == "" {
		t.Skipf("chat-template corpus not found, skipping: %s", why)
	}
	data, err := os.ReadFile(filepath.Join(dir, "cases.json"))
	require.NoError(t, err)
	var cases []corpusCase
	require.NoError(t, json.Unmarshal(data, &cases))
	require.NotEmpty(t, cases, "cases.json holds no cases")
	return dir, cases
}

// messageFromJSON converts one corpus message into a Message through the
// public API: string content stays a string, a list becomes parts.
func messageFromJSON(t testing.TB, raw json.RawMessage) Message {
	t.Helper()
	var m struct {
		Role    string          `json:"role"`
		Content json.RawMessage `json:"content"`
	}
	require.NoError(t, json.Unmarshal(raw, &m))
	var s string
	if err := json.Unmarshal(m.Content, &s); err == nil {
		return Message{Role: m.Role, Text: s}
	}
	var parts []map[string]string
	require.NoError(t, json.Unmarshal(m.Content, &parts), "content of %s", raw)
	msg := Message{Role: m.Role, Content: []Part{}}
	for _, p := range parts {
		switch p["type"] {
		case TypeImage:
			require.Len(t, p, 1, "image part with extra keys: %v", p)
			msg.Content = append(msg.Content, Image())
		case TypeText:
			require.Len(t, p, 2, "text part with extra keys: %v", p)
			msg.Content = append(msg.Content, Text(p["text"]))
		default:
			t.Fatalf("unknown part type in %v", p)
		}
	}
	// The conversion must give back the same JSON key order.
	return msg
}

// caseOptions returns the render options for a case: its variables, with
// bos_token and eos_token through the dedicated fields.
func caseOptions(t testing.TB, c corpusCase) Options {
	t.Helper()
	var vars map[string]json.RawMessage
	require.NoError(t, json.Unmarshal(c.Variables, &vars))
	opts := Options{AddGenerationPrompt: c.AddGenerationPrompt, Now: func() time.Time { return corpusDate }}
	for k, v := range vars {
		switch k {
		case "bos_token", "eos_token":
			var s string
			require.NoError(t, json.Unmarshal(v, &s))
			if k == "bos_token" {
				opts.BOSToken = s
			} else {
				opts.EOSToken = s
			}
		default:
			if opts.Vars == nil {
				opts.Vars = map[string]any{}
			}
			opts.Vars[k] = v
		}
	}
	return opts
}

func TestCorpus(t *testing.T) {
	dir, cases := loadCorpus(t)
	ran := 0
	for _, c := range cases {
		ran++
		corpusRan.Add(1)
		t.Run(c.name(), func(t *testing.T) {
			src, err := os.ReadFile(filepath.Join(dir, c.TemplateFile))
			require.NoError(t, err)
			tmpl, err := Compile(string(src))
			require.NoError(t, err)
			msgs := make([]Message, len(c.Messages))
			for i, raw := range c.Messages {
				msgs[i] = messageFromJSON(t, raw)
			}
			got, err := tmpl.Render(msgs, caseOptions(t, c))
			switch {
			case c.ExpectedError != nil:
				require.Error(t, err)
				var raise *RaiseError
				require.True(t, errors.As(err, &raise), "want a *RaiseError, got %T: %v", err, err)
				assert.Equal(t, *c.ExpectedError, err.Error())
				assert.Equal(t, *c.ExpectedError, raise.Message)
			case c.Expected != nil:
				require.NoError(t, err)
				require.Equal(t, *c.Expected, got)
			default:
				t.Fatalf("case has neither expected nor expected_error")
			}
			corpusPassed.Add(1)
		})
	}
	t.Logf("chat-template corpus: ran %d cases from %s", ran, dir)
}
