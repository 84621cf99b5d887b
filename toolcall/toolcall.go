package toolcall

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/vlm-go/vlm/template"
)

// ErrInvalid: a tool, a call or a tool choice is malformed (the error
// says which).
var ErrInvalid = errors.New("toolcall: invalid")

// Tool is a function the model may call.
type Tool struct {
	Name        string          // the function's name: letters, digits, '_' and '-'
	Description string          // what it does, for the model
	Parameters  json.RawMessage // the JSON schema of its arguments object; empty means none
}

// Call is a function call, made by the model or given back in history.
type Call struct {
	ID        string          // the call's id; Parse makes one up (9 letters and digits)
	Name      string          // the function called
	Arguments json.RawMessage // the arguments: a JSON object, compact
}

// ChoiceMode says whether and how the model calls tools.
type ChoiceMode int

// Tool choice modes (OpenAI's tool_choice).
const (
	ChoiceAuto     ChoiceMode = iota // the model writes text or calls (lazy grammar at the call marker)
	ChoiceNone                       // no tools: the template sees none, the output is text
	ChoiceRequired                   // the answer is one or more calls
	ChoiceNamed                      // the answer calls the function Choice.Name
)

// Choice is a tool choice.
type Choice struct {
	Mode ChoiceMode
	Name string // the function, for ChoiceNamed
}

// Validate checks tools: names present, unique and well formed, parameters
// a JSON object when given.
func Validate(tools []Tool) error {
	seen := map[string]bool{}
	for i, t := range tools {
		if t.Name == "" {
			return fmt.Errorf("%w: tool %d has no name", ErrInvalid, i)
		}
		for _, r := range t.Name {
			if !(r == '_' || r == '-' || r == '.' || r >= '0' && r <= '9' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z') {
				return fmt.Errorf("%w: tool name %q: only letters, digits, '_', '-' and '.'", ErrInvalid, t.Name)
			}
		}
		if seen[t.Name] {
			return fmt.Errorf("%w: two tools named %q", ErrInvalid, t.Name)
		}
		seen[t.Name] = true
		if p := bytes.TrimSpace(t.Parameters); len(p) > 0 && string(p) != "null" && p[0] != '{' {
			return fmt.Errorf("%w: tool %q: parameters must be a JSON schema object", ErrInvalid, t.Name)
		}
	}
	return nil
}

// Format is one model family's call syntax; see the package doc.
type Format struct {
	name     string
	native   bool   // the template renders tools, calls and results itself
	marker   string // what starts the calls; "" for llama3-json (a JSON object at the start)
	parallel bool   // the family can write several calls in one answer
	idLen    int    // Mistral: call ids must be this long (0: any)
}

// Format names.
const (
	Llama3JSON = "llama3-json"
	MistralV7  = "mistral-v7"
	MistralV11 = "mistral-v11"
	LFM2       = "lfm2"
	QwenXML    = "qwen-xml"
	Gemma4     = "gemma4"
	Hermes     = "hermes"
)

var formats = map[string]Format{
	Llama3JSON: {name: Llama3JSON, native: true, parallel: false},
	MistralV7:  {name: MistralV7, native: true, marker: "[TOOL_CALLS]", parallel: true, idLen: 9},
	MistralV11: {name: MistralV11, native: true, marker: "[TOOL_CALLS]", parallel: true, idLen: 9},
	LFM2:       {name: LFM2, native: true, marker: "<|tool_call_start|>", parallel: true},
	QwenXML:    {name: QwenXML, native: true, marker: "<tool_call>", parallel: true},
	Gemma4:     {name: Gemma4, native: true, marker: "<|tool_call>", parallel: true},
	Hermes:     {name: Hermes, native: false, marker: "<tool_call>", parallel: true},
}

// Detect returns the call format of a chat template, from its source:
// a native format when the template renders tools in a syntax this package
// knows, else the generic format (Hermes-style, not native).
func Detect(templateSource string) *Format {
	s := templateSource
	has := func(subs ...string) bool {
		for _, x := range subs {
			if !strings.Contains(s, x) {
				return false
			}
		}
		return true
	}
	name := Hermes
	switch {
	case has("<|tool_call_start|>"):
		name = LFM2
	case has("<|tool_call>"):
		name = Gemma4
	case has("[TOOL_CALLS]", "[ARGS]"):
		name = MistralV11
	case has("[TOOL_CALLS]"):
		name = MistralV7
	case has("<tool_call>", "<function="):
		name = QwenXML
	case has("tools", "\"parameters\"") && (has("<|python_tag|>") || has("ipython")):
		name = Llama3JSON
	case has("<tool_call>", "tools"):
		f := formats[Hermes]
		f.native = true // Qwen2.5 / Hermes templates render tools themselves
		return &f
	}
	f := formats[name]
	return &f
}

// Named returns the format with the given name (one of the constants).
func Named(name string) (*Format, error) {
	f, ok := formats[name]
	if !ok {
		return nil, fmt.Errorf("%w: unknown tool-call format %q", ErrInvalid, name)
	}
	return &f, nil
}

// Name returns the format's name.
func (f *Format) Name() string { return f.name }

// Native reports whether the template renders tools, calls and results
// itself; otherwise Prepare writes them into the messages (generic format).
func (f *Format) Native() bool { return f.native }

// Parallel reports whether the family writes several calls in one answer
// (Llama's JSON format holds one).
func (f *Format) Parallel() bool { return f.parallel }

// Marker returns the text that starts the calls ("" for llama3-json,
// whose call is a JSON object at the start of the answer).
func (f *Format) Marker() string { return f.marker }

// NewID returns a new call id: 9 letters and digits, which every family's
// template accepts (Mistral's require exactly 9).
func NewID() string {
	const alphabet = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
	var b [9]byte
	_, _ = rand.Read(b[:])
	for i := range b {
		b[i] = alphabet[int(b[i])%len(alphabet)]
	}
	return string(b[:])
}

// AssistantCalls returns the assistant message that made calls, with text
// (may be empty) as its string content and the calls under "tool_calls"
// as transformers takes them: {"id", "type": "function", "function":
// {"name", "arguments"}} with the arguments as a JSON object. Arguments
// that are not a JSON object are passed as the JSON string they are.
func AssistantCalls(text string, calls []Call) template.Message {
	list := make([]any, len(calls))
	for i, c := range calls {
		var args any = c.Arguments
		if a := bytes.TrimSpace(c.Arguments); len(a) == 0 || a[0] != '{' || !json.Valid(a) {
			args = string(c.Arguments)
		}
		list[i] = template.Map{
			{Key: "id", Value: c.ID}, {Key: "type", Value: "function"},
			{Key: "function", Value: template.Map{{Key: "name", Value: c.Name}, {Key: "arguments", Value: args}}},
		}
	}
	return template.Message{Role: "assistant", Text: text, Extra: template.Map{{Key: "tool_calls", Value: list}}}
}

// Result returns the tool message that answers call id of function name.
func Result(id, name, content string) template.Message {
	return template.Message{Role: "tool", Text: content, Extra: template.Map{{Key: "tool_call_id", Value: id}, {Key: "name", Value: name}}}
}

// toolsValue is the template's tools variable: transformers' list of
// {"type": "function", "function": {"name", "description", "parameters"}}.
func toolsValue(tools []Tool) []any {
	out := make([]any, len(tools))
	for i, t := range tools {
		fn := template.Map{{Key: "name", Value: t.Name}, {Key: "description", Value: t.Description}}
		fn = append(fn, template.KV{Key: "parameters", Value: parameters(t)})
		out[i] = template.Map{{Key: "type", Value: "function"}, {Key: "function", Value: fn}}
	}
	return out
}

// parameters returns t's schema, {"type": "object", "properties": {}}
// when it has none.
func parameters(t Tool) json.RawMessage {
	if p := bytes.TrimSpace(t.Parameters); len(p) > 0 && string(p) != "null" {
		return p
	}
	return json.RawMessage(`{"type": "object", "properties": {}}`)
}

// Prepare lays out msgs and tools for the chat template: it returns the
// messages to render and the template variables to add. A native format
// gets the "tools" variable and the messages as they are (Mistral call ids
// made 9 characters, consistently in calls and results); the generic
// format gets no variable: the tools, calls and results are written into
// the messages (see the package doc). With no tools, calls and results in
// the history are still laid out.
func (f *Format) Prepare(msgs []template.Message, tools []Tool) ([]template.Message, map[string]any) {
	var vars map[string]any
	if f.native {
		if len(tools) > 0 {
			vars = map[string]any{"tools": toolsValue(tools)}
		}
		if f.idLen == 0 {
			return msgs, vars
		}
		out := make([]template.Message, len(msgs))
		for i, m := range msgs {
			out[i] = f.fixIDs(m)
		}
		return out, vars
	}
	return f.generic(msgs, tools), nil
}

// fixIDs rewrites the call ids of m that are not idLen letters and digits.
func (f *Format) fixIDs(m template.Message) template.Message {
	if len(m.Extra) == 0 {
		return m
	}
	extra := make(template.Map, len(m.Extra))
	copy(extra, m.Extra)
	for i, kv := range extra {
		switch kv.Key {
		case "tool_call_id":
			if s, ok := kv.Value.(string); ok {
				extra[i].Value = f.fixID(s)
			}
		case "tool_calls":
			list, ok := kv.Value.([]any)
			if !ok {
				continue
			}
			nl := make([]any, len(list))
			for j, c := range list {
				nl[j] = c
				if cm, ok := c.(template.Map); ok {
					ncm := make(template.Map, len(cm))
					copy(ncm, cm)
					for k, e := range ncm {
						if s, ok := e.Value.(string); ok && e.Key == "id" {
							ncm[k].Value = f.fixID(s)
						}
					}
					nl[j] = ncm
				}
			}
			extra[i].Value = nl
		}
	}
	m.Extra = extra
	return m
}

func (f *Format) fixID(id string) string {
	if len(id) == f.idLen && isAlnum(id) {
		return id
	}
	if f.name == MistralV7 && len(id) > f.idLen && isAlnum(id[len(id)-f.idLen:]) {
		return id // the v7 template keeps the last 9 characters
	}
	sum := sha256.Sum256([]byte(id))
	const alphabet = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
	b := make([]byte, f.idLen)
	for i := range b {
		b[i] = alphabet[int(sum[i])%len(alphabet)]
	}
	return string(b)
}

func isAlnum(s string) bool {
	for _, r := range s {
		if !(r >= '0' && r <= '9' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z') {
			return false
		}
	}
	return true
}

// GenericSystemPrompt returns the system section of the generic format
// that describes tools.
func GenericSystemPrompt(tools []Tool) string {
	var b strings.Builder
	b.WriteString("# Tools\n\nYou may call one or more functions to assist with the user query.\n\n")
	b.WriteString("You are provided with function signatures within <tools></tools> XML tags:\n<tools>")
	for _, t := range tools {
		b.WriteString("\n")
		b.WriteString(`{"type": "function", "function": ` + string(orderedFunction(t)) + `}`)
	}
	b.WriteString("\n</tools>\n\nFor each function call, return a json object with function name and arguments within <tool_call></tool_call> XML tags:\n")
	b.WriteString("<tool_call>\n{\"name\": <function-name>, \"arguments\": <args-json-object>}\n</tool_call>")
	return b.String()
}

// orderedFunction is the function object with its keys in the usual
// order (name, description, parameters), the schema's key order kept.
func orderedFunction(t Tool) json.RawMessage {
	name, _ := json.Marshal(t.Name)
	desc, _ := json.Marshal(t.Description)
	var b bytes.Buffer
	b.WriteString(`{"name": `)
	b.Write(name)
	b.WriteString(`, "description": `)
	b.Write(desc)
	b.WriteString(`, "parameters": `)
	b.Write(spacedJSON(parameters(t)))
	b.WriteString("}")
	return b.Bytes()
}

// spacedJSON rewrites a JSON document with Python's json.dumps default
// separators (", " and ": "), keeping key order and string contents.
func spacedJSON(raw []byte) []byte {
	var buf bytes.Buffer
	if err := json.Compact(&buf, raw); err != nil {
		return raw
	}
	c := buf.Bytes()
	var out bytes.Buffer
	inStr := false
	for i := 0; i < len(c); i++ {
		ch := c[i]
		out.WriteByte(ch)
		switch {
		case inStr && ch == '\\':
			i++
			if i < len(c) {
				out.WriteByte(c[i])
			}
		case ch == '"':
			inStr = !inStr
		case !inStr && (ch == ',' || ch == ':'):
			out.WriteByte(' ')
		}
	}
	return out.Bytes()
}

// generic writes tools, calls and results into the messages.
func (f *Format) generic(msgs []template.Message, tools []Tool) []template.Message {
	out := make([]template.Message, 0, len(msgs)+1)
	if len(tools) > 0 {
		section := GenericSystemPrompt(tools)
		if len(msgs) > 0 && msgs[0].Role == "system" {
			sys := msgs[0]
			if sys.IsString() {
				sys.Text = joinText(sys.Text, section)
			} else {
				parts := append([]template.Part{}, sys.Content...)
				if n := len(parts); n > 0 && parts[n-1].Type == template.TypeText {
					parts[n-1].Text = joinText(parts[n-1].Text, section)
				} else {
					parts = append(parts, template.Text(section))
				}
				sys.Content = parts
			}
			out = append(out, sys)
			msgs = msgs[1:]
		} else {
			out = append(out, template.System(template.Text(section)))
		}
	}
	for _, m := range msgs {
		switch {
		case m.Role == "tool":
			block := "<tool_response>\n" + messageText(m) + "\n</tool_response>"
			if n := len(out); n > 0 && out[n-1].Role == "user" && len(out[n-1].Content) > 0 && strings.HasPrefix(out[n-1].Content[0].Text, "<tool_response>") {
				last := &out[n-1]
				parts := append([]template.Part{}, last.Content...)
				parts[len(parts)-1].Text += "\n" + block
				last.Content = parts
				continue
			}
			out = append(out, template.User(template.Text(block)))
		case m.Role == "assistant" && len(callsOf(m)) > 0:
			var b strings.Builder
			b.WriteString(messageText(m))
			for _, c := range callsOf(m) {
				if b.Len() > 0 {
					b.WriteString("\n")
				}
				b.WriteString("<tool_call>\n")
				b.WriteString(hermesCall(c))
				b.WriteString("\n</tool_call>")
			}
			out = append(out, template.Assistant(template.Text(b.String())))
		default:
			out = append(out, withoutCallKeys(m))
		}
	}
	return out
}

func joinText(a, b string) string {
	if strings.TrimSpace(a) == "" {
		return b
	}
	return a + "\n\n" + b
}

// hermesCall is {"name": ..., "arguments": ...} as the generic format writes it.
func hermesCall(c Call) string {
	name, _ := json.Marshal(c.Name)
	args := bytes.TrimSpace(c.Arguments)
	if len(args) == 0 {
		args = []byte("{}")
	}
	return `{"name": ` + string(name) + `, "arguments": ` + string(spacedJSON(args)) + `}`
}

// messageText is m's text: its string content or its text parts joined.
func messageText(m template.Message) string {
	if m.IsString() {
		return m.Text
	}
	var b strings.Builder
	for _, p := range m.Content {
		if p.Type == template.TypeText {
			b.WriteString(p.Text)
		}
	}
	return b.String()
}

// withoutCallKeys drops tool_call_id and tool_calls from m (templates that
// ignore tools should not see them).
func withoutCallKeys(m template.Message) template.Message {
	var extra template.Map
	for _, kv := range m.Extra {
		if kv.Key != "tool_calls" && kv.Key != "tool_call_id" {
			extra = append(extra, kv)
		}
	}
	m.Extra = extra
	return m
}

// callsOf reads the calls of an assistant message made by AssistantCalls.
func callsOf(m template.Message) []Call {
	var out []Call
	for _, kv := range m.Extra {
		if kv.Key != "tool_calls" {
			continue
		}
		list, _ := kv.Value.([]any)
		for _, x := range list {
			cm, ok := x.(template.Map)
			if !ok {
				continue
			}
			var c Call
			for _, e := range cm {
				switch e.Key {
				case "id":
					c.ID, _ = e.Value.(string)
				case "function":
					fn, _ := e.Value.(template.Map)
					for _, fe := range fn {
						switch fe.Key {
						case "name":
							c.Name, _ = fe.Value.(string)
						case "arguments":
							switch a := fe.Value.(type) {
							case json.RawMessage:
								c.Arguments = a
							case string:
								c.Arguments = json.RawMessage(a)
							}
						}
					}
				}
			}
			out = append(out, c)
		}
	}
	return out
}
