package template

import (
	"bytes"
	"compress/gzip"
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
// cases.json), overriding testdata/chat-templates.
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
	// The copy in this package's testdata, so that a plain clone tests it.
	if _, err := os.Stat(filepath.Join("testdata", "chat-templates", "cases.json")); err == nil {
		return filepath.Join("testdata", "chat-templates"), ""
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
// public API: string content stays a string, a list becomes parts, and
// other keys become Extra, all in the JSON's key order.
func messageFromJSON(t testing.TB, raw json.RawMessage) Message {
	t.Helper()
	var msg Message
	hasContent := false
	for _, kv := range orderedObject(t, raw) {
		switch kv.Key {
		case "role":
			require.NoError(t, json.Unmarshal(kv.Value.(json.RawMessage), &msg.Role))
		case "content":
			hasContent = true
			require.Empty(t, msg.Extra, "content must follow role in %s", raw)
			content := kv.Value.(json.RawMessage)
			var s string
			if err := json.Unmarshal(content, &s); err == nil {
				msg.Text = s
				continue
			}
			var parts []json.RawMessage
			require.NoError(t, json.Unmarshal(content, &parts), "content of %s", raw)
			msg.Content = []Part{}
			for _, p := range parts {
				msg.Content = append(msg.Content, partFromJSON(t, p))
			}
		default:
			msg.Extra = append(msg.Extra, kv)
		}
	}
	require.True(t, hasContent, "message without content: %s", raw)
	return msg
}

func partFromJSON(t testing.TB, raw json.RawMessage) Part {
	t.Helper()
	var p Part
	for i, kv := range orderedObject(t, raw) {
		v := kv.Value.(json.RawMessage)
		switch {
		case i == 0 && kv.Key == "type":
			require.NoError(t, json.Unmarshal(v, &p.Type))
		case i == 1 && kv.Key == "text" && p.Type == TypeText:
			require.NoError(t, json.Unmarshal(v, &p.Text))
		default:
			p.Extra = append(p.Extra, kv)
		}
	}
	require.NotEmpty(t, p.Type, "part without a leading type: %s", raw)
	if p.Type == TypeText {
		require.Contains(t, string(raw), `"text"`, "text part without text: %s", raw)
	}
	return p
}

// orderedObject splits a JSON object into its keys, in order, with raw
// values.
func orderedObject(t testing.TB, raw json.RawMessage) Map {
	t.Helper()
	dec := json.NewDecoder(bytes.NewReader(raw))
	tok, err := dec.Token()
	require.NoError(t, err)
	require.Equal(t, json.Delim('{'), tok, "not an object: %s", raw)
	var out Map
	for dec.More() {
		k, err := dec.Token()
		require.NoError(t, err)
		var v json.RawMessage
		require.NoError(t, dec.Decode(&v))
		out = append(out, KV{Key: k.(string), Value: v})
	}
	return out
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
	passed := runCases(t, dir, cases, &corpusRan, &corpusPassed)
	t.Logf("chat-template corpus: %d of %d cases passed, from %s", passed, len(cases), dir)
}

// diffRan and diffPassed count the jinja2 differential cases.
var diffRan, diffPassed atomic.Int64

// TestDifferential renders the corpus templates with the conversations of
// testdata/jinja2-differential.json.gz (written by
// testdata/jinja2_reference.py with Python's jinja2): quotes, backslashes,
// Jinja syntax and placeholders inside text, emoji with joiners, tools,
// tool calls, thinking, add_vision_id.
func TestDifferential(t *testing.T) {
	dir, why := findCorpus()
	if dir == "" {
		t.Skipf("chat-template corpus (the templates) not found, skipping: %s", why)
	}
	f, err := os.Open(filepath.Join("testdata", "jinja2-differential.json.gz"))
	require.NoError(t, err)
	defer f.Close()
	zr, err := gzip.NewReader(f)
	require.NoError(t, err)
	var cases []corpusCase
	require.NoError(t, json.NewDecoder(zr).Decode(&cases))
	require.NotEmpty(t, cases)
	passed := runCases(t, dir, cases, &diffRan, &diffPassed)
	t.Logf("jinja2 differential: %d of %d cases passed", passed, len(cases))
}

// runCases renders every case and compares it byte for byte; it returns
// how many passed and adds to the counters.
func runCases(t *testing.T, dir string, cases []corpusCase, ran, passedCount *atomic.Int64) int {
	passed := 0
	for _, c := range cases {
		ran.Add(1)
		ok := t.Run(c.name(), func(t *testing.T) {
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
		})
		if ok {
			passed++
			passedCount.Add(1)
		}
	}
	return passed
}
