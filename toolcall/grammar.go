package toolcall

import (
	"bytes"
	"encoding/json"
	"fmt"
	"regexp"
	"sort"
	"strings"

	"github.com/vlm-go/vlm/sampler/jsonschema"
)

// Converter turns a JSON schema into a GBNF grammar (root rule "root")
// whose sentences are the JSON documents the schema accepts;
// jsonschema.Grammar is the default.
type Converter func(schema []byte) (string, error)

// Grammar constrains an answer to tool calls.
type Grammar struct {
	// Text is the GBNF grammar; its start rule is "root".
	Text string
	// Triggers, when not empty, make the grammar lazy: it applies from the
	// first match of one of these regular expressions (ECMAScript syntax,
	// matched against the whole output so far; the grammar starts at the
	// first capture group), as llama.cpp's
	// llama_sampler_init_grammar_lazy_patterns takes them. Empty: the
	// grammar applies from the first token.
	Triggers []string
}

// Grammar returns the grammar for choice over tools (nil for ChoiceNone or
// no tools). With ChoiceAuto it is lazy (Triggers set); with
// ChoiceRequired or ChoiceNamed it applies from the first token. parallel
// allows several calls in one answer where the family can write them.
// conv converts the parameters' JSON schemas (nil: jsonschema.Grammar).
func (f *Format) Grammar(tools []Tool, choice Choice, parallel bool, conv Converter) (*Grammar, error) {
	if choice.Mode == ChoiceNone || len(tools) == 0 {
		return nil, nil
	}
	if conv == nil {
		conv = jsonschema.Grammar
	}
	if choice.Mode == ChoiceNamed {
		var one []Tool
		for _, t := range tools {
			if t.Name == choice.Name {
				one = append(one, t)
			}
		}
		if len(one) == 0 {
			return nil, fmt.Errorf("%w: tool_choice names %q, which is not among the tools", ErrInvalid, choice.Name)
		}
		tools = one
	}
	b := &builder{conv: conv, rules: map[string]string{}}
	b.rules["ws"] = `[ \t\n]{0,2}`
	var alts []string
	for i, t := range tools {
		r, err := b.call(f, t, i)
		if err != nil {
			return nil, fmt.Errorf("tool %q: %w", t.Name, err)
		}
		alts = append(alts, r)
	}
	b.rules["call"] = strings.Join(alts, " | ")
	calls := "call"
	if parallel && f.parallel {
		calls = "call (" + f.separator() + " call)*"
	}
	switch f.name {
	case MistralV7:
		b.rules["root"] = `"[TOOL_CALLS]" ws "[" ws ` + calls + ` ws "]"`
	case LFM2:
		b.rules["root"] = `"<|tool_call_start|>[" ` + calls + ` "]<|tool_call_end|>"`
	case Llama3JSON:
		b.rules["root"] = `ws ` + calls
	default:
		b.rules["root"] = calls
	}
	g := &Grammar{Text: b.text()}
	if choice.Mode == ChoiceAuto {
		g.Triggers = []string{f.trigger()}
	}
	return g, nil
}

// separator is the GBNF between two calls.
func (f *Format) separator() string {
	switch f.name {
	case MistralV7, LFM2:
		return `"," ws`
	case MistralV11, Gemma4:
		return `""`
	}
	return `ws`
}

// trigger is the regular expression that starts the lazy grammar.
func (f *Format) trigger() string {
	if f.marker == "" { // llama3-json: a JSON object with a name at the start
		return `\s*(\{\s*"name")[\s\S]*`
	}
	return `[\s\S]*?(` + regexp.QuoteMeta(f.marker) + `)[\s\S]*`
}

type builder struct {
	conv  Converter
	rules map[string]string
	n     int
}

func (b *builder) text() string {
	var out strings.Builder
	out.WriteString("root ::= " + b.rules["root"] + "\n")
	names := make([]string, 0, len(b.rules))
	for n := range b.rules {
		if n != "root" {
			names = append(names, n)
		}
	}
	sort.Strings(names)
	for _, n := range names {
		out.WriteString(n + " ::= " + b.rules[n] + "\n")
	}
	return out.String()
}

// schema converts a JSON schema and adds its rules under a fresh prefix;
// it returns the name of its root rule. python turns the JSON literals
// true, false and null into Python's True, False and None.
func (b *builder) schema(s []byte, python bool) (string, error) {
	g, err := b.conv(s)
	if err != nil {
		return "", err
	}
	b.n++
	prefix := fmt.Sprintf("s%d-", b.n)
	rules, err := renameRules(g, prefix, python)
	if err != nil {
		return "", err
	}
	for k, v := range rules {
		b.rules[k] = v
	}
	return prefix + "root", nil
}

// lit quotes s as a GBNF literal.
func lit(s string) string {
	var out strings.Builder
	out.WriteByte('"')
	for _, r := range s {
		switch r {
		case '"':
			out.WriteString(`\"`)
		case '\\':
			out.WriteString(`\\`)
		case '\n':
			out.WriteString(`\n`)
		case '\r':
			out.WriteString(`\r`)
		case '\t':
			out.WriteString(`\t`)
		default:
			out.WriteRune(r)
		}
	}
	out.WriteByte('"')
	return out.String()
}

// property is one property of a parameters schema.
type property struct {
	name     string
	schema   json.RawMessage
	required bool
	isString bool // its type is exactly "string"
	enum     []string
	min, max *int // minLength, maxLength
}

// properties reads the properties of a parameters schema in order; defs
// are its $defs / definitions, copied into each property's schema so that
// $refs resolve.
func properties(params json.RawMessage) ([]property, error) {
	var top struct {
		Properties  json.RawMessage `json:"properties"`
		Required    []string        `json:"required"`
		Defs        json.RawMessage `json:"$defs"`
		Definitions json.RawMessage `json:"definitions"`
	}
	if err := json.Unmarshal(params, &top); err != nil {
		return nil, fmt.Errorf("%w: parameters: %v", ErrInvalid, err)
	}
	req := map[string]bool{}
	for _, r := range top.Required {
		req[r] = true
	}
	var out []property
	if len(top.Properties) == 0 || string(top.Properties) == "null" {
		return nil, nil
	}
	keys, vals, err := orderedObject(top.Properties)
	if err != nil {
		return nil, fmt.Errorf("%w: parameters.properties: %v", ErrInvalid, err)
	}
	for i, k := range keys {
		s := vals[i]
		if len(top.Defs) > 0 || len(top.Definitions) > 0 {
			var m map[string]json.RawMessage
			if json.Unmarshal(s, &m) == nil {
				if len(top.Defs) > 0 {
					m["$defs"] = top.Defs
				}
				if len(top.Definitions) > 0 {
					m["definitions"] = top.Definitions
				}
				s, _ = json.Marshal(m)
			}
		}
		var typ struct {
			Type      any      `json:"type"`
			Enum      []string `json:"enum"`
			Const     *string  `json:"const"`
			MinLength *int     `json:"minLength"`
			MaxLength *int     `json:"maxLength"`
		}
		_ = json.Unmarshal(vals[i], &typ)
		p := property{name: k, schema: s, required: req[k], isString: typ.Type == "string", enum: typ.Enum, min: typ.MinLength, max: typ.MaxLength}
		if typ.Const != nil {
			p.enum = []string{*typ.Const}
		}
		out = append(out, p)
	}
	return out, nil
}

// orderedObject splits a JSON object into its keys and raw values, in order.
func orderedObject(raw []byte) ([]string, []json.RawMessage, error) {
	dec := json.NewDecoder(bytes.NewReader(raw))
	tok, err := dec.Token()
	if err != nil {
		return nil, nil, err
	}
	if tok != json.Delim('{') {
		return nil, nil, fmt.Errorf("not an object")
	}
	var keys []string
	var vals []json.RawMessage
	for dec.More() {
		k, err := dec.Token()
		if err != nil {
			return nil, nil, err
		}
		var v json.RawMessage
		if err := dec.Decode(&v); err != nil {
			return nil, nil, err
		}
		keys = append(keys, k.(string))
		vals = append(vals, v)
	}
	return keys, vals, nil
}

// call adds the rule for one call of t in f's syntax and returns its name.
func (b *builder) call(f *Format, t Tool, i int) (string, error) {
	name := fmt.Sprintf("call-%d", i)
	params := parameters(t)
	jsonArgs := func() (string, error) { return b.schema(params, false) }
	switch f.name {
	case Llama3JSON, MistralV7, Hermes:
		args, err := jsonArgs()
		if err != nil {
			return "", err
		}
		key := "arguments"
		if f.name == Llama3JSON {
			key = "parameters"
		}
		obj := `"{" ws "\"name\"" ws ":" ws ` + lit(jsonString(t.Name)) + ` ws "," ws ` + lit(`"`+key+`"`) + ` ws ":" ws ` + args + ` ws "}"`
		if f.name == Hermes {
			obj = `"<tool_call>" ws ` + obj + ` ws "</tool_call>"`
		}
		b.rules[name] = obj
	case MistralV11:
		args, err := jsonArgs()
		if err != nil {
			return "", err
		}
		b.rules[name] = `"[TOOL_CALLS]" ` + lit(t.Name) + ` "[ARGS]" ` + args
	case LFM2, QwenXML, Gemma4:
		props, err := properties(params)
		if err != nil {
			return "", err
		}
		var items []string // one expression per property, in order
		var req []bool
		for _, p := range props {
			var val string
			switch {
			case f.name == QwenXML && p.isString:
				val = b.rawString(p)
			case f.name == Gemma4 && p.isString:
				val = `"<|\"|>" ` + b.rawString(p) + ` "<|\"|>"`
			default:
				v, err := b.schema(p.schema, f.name == LFM2)
				if err != nil {
					return "", fmt.Errorf("parameter %q: %w", p.name, err)
				}
				val = v
			}
			switch f.name {
			case LFM2:
				items = append(items, lit(p.name+"=")+" "+val)
			case QwenXML:
				items = append(items, lit("<parameter="+p.name+">\n")+" "+val+` "\n</parameter>\n"`)
			case Gemma4:
				items = append(items, lit(p.name+":")+" "+val)
			}
			req = append(req, p.required)
		}
		sep := `""`
		switch f.name {
		case LFM2:
			sep = `", "`
		case Gemma4:
			sep = `","`
		}
		body := b.sequence(name, items, req, sep)
		switch f.name {
		case LFM2:
			b.rules[name] = lit(t.Name+"(") + " " + body + ` ")"`
		case QwenXML:
			b.rules[name] = lit("<tool_call>\n<function="+t.Name+">\n") + " " + body + ` "</function>\n</tool_call>"`
		case Gemma4:
			b.rules[name] = lit("<|tool_call>call:"+t.Name+"{") + " " + body + ` "}<tool_call|>"`
		}
	default:
		return "", fmt.Errorf("%w: format %q", ErrInvalid, f.name)
	}
	return name, nil
}

// textChar is a character of an unquoted string parameter: any Unicode
// scalar value but '<' (which starts the closing tag) and the C0 controls
// other than tab, newline and carriage return, so that the text is valid
// UTF-8.
const textChar = `[\t\n\r -;=-~\u0080-\uD7FF\uE000-\uFFFD\U00010000-\U0010FFFF]`

// rawString is the GBNF of an unquoted string parameter (Qwen XML, Gemma
// 4): its enum's values, or minLength to maxLength characters, or any
// text; never '<'.
func (b *builder) rawString(p property) string {
	if len(p.enum) > 0 {
		alts := make([]string, len(p.enum))
		for i, e := range p.enum {
			alts[i] = lit(e)
		}
		return "(" + strings.Join(alts, " | ") + ")"
	}
	if p.max != nil || p.min != nil {
		lo, hi := 0, ""
		if p.min != nil {
			lo = *p.min
		}
		if p.max != nil {
			hi = fmt.Sprint(*p.max)
		}
		b.rules["text-char"] = textChar
		return fmt.Sprintf("text-char{%d,%s}", lo, hi)
	}
	b.rules["text-char"] = textChar
	return "text-char*"
}

// sequence is the GBNF for items in order, separated by sep, the required
// ones always and the others possibly left out.
func (b *builder) sequence(name string, items []string, req []bool, sep string) string {
	if len(items) == 0 {
		return `""`
	}
	// rest[i]: the items from i on, each preceded by sep (an item follows
	// an earlier one).
	// first[i]: the items from i on where none came before.
	rest := make([]string, len(items)+1)
	first := make([]string, len(items)+1)
	rest[len(items)] = `""`
	first[len(items)] = `""`
	for i := len(items) - 1; i >= 0; i-- {
		rn := fmt.Sprintf("%s-rest-%d", name, i)
		fn := fmt.Sprintf("%s-first-%d", name, i)
		with := sep + " " + items[i] + " " + rest[i+1]
		if req[i] {
			b.rules[rn] = with
			b.rules[fn] = items[i] + " " + rest[i+1]
		} else {
			b.rules[rn] = "(" + with + ") | " + rest[i+1]
			b.rules[fn] = "(" + items[i] + " " + rest[i+1] + ") | " + first[i+1]
		}
		rest[i], first[i] = rn, fn
	}
	return first[0]
}

func jsonString(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}

// renameRules parses a GBNF grammar (one rule per line) and returns its
// rules with every rule name prefixed; python replaces the JSON literals
// "true", "false" and "null" with Python's spellings.
func renameRules(g, prefix string, python bool) (map[string]string, error) {
	out := map[string]string{}
	for _, line := range strings.Split(g, "\n") {
		if strings.TrimSpace(line) == "" || strings.HasPrefix(strings.TrimSpace(line), "#") {
			continue
		}
		name, body, ok := strings.Cut(line, "::=")
		if !ok {
			return nil, fmt.Errorf("%w: grammar line %q has no ::=", ErrInvalid, line)
		}
		name = strings.TrimSpace(name)
		if name == "space" {
			// JSON whitespace inside a call: at most one space (the
			// converter allows a newline and 20 blanks, which a weak or
			// random model fills until the token limit cuts the call).
			body = `" "?`
		}
		out[prefix+name] = renameBody(strings.TrimSpace(body), prefix, python)
	}
	return out, nil
}

var pythonLiterals = map[string]string{`"true"`: `"True"`, `"false"`: `"False"`, `"null"`: `"None"`}

// renameBody prefixes the rule references in one rule body, leaving string
// literals, character classes and {m,n} counts alone.
func renameBody(body, prefix string, python bool) string {
	var out strings.Builder
	for i := 0; i < len(body); {
		c := body[i]
		switch {
		case c == '"' || c == '[':
			end := byte('"')
			if c == '[' {
				end = ']'
			}
			j := i + 1
			for j < len(body) && body[j] != end {
				if body[j] == '\\' {
					j++
				}
				j++
			}
			if j < len(body) {
				j++
			}
			tok := body[i:j]
			if python {
				if p, ok := pythonLiterals[tok]; ok {
					tok = p
				}
			}
			out.WriteString(tok)
			i = j
		case c == '{':
			j := strings.IndexByte(body[i:], '}')
			if j < 0 {
				j = len(body) - i - 1
			}
			out.WriteString(body[i : i+j+1])
			i += j + 1
		case c == '_' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z':
			j := i
			for j < len(body) && (body[j] == '-' || body[j] == '_' || body[j] >= 'a' && body[j] <= 'z' || body[j] >= 'A' && body[j] <= 'Z' || body[j] >= '0' && body[j] <= '9') {
				j++
			}
			out.WriteString(prefix + body[i:j])
			i = j
		default:
			out.WriteByte(c)
			i++
		}
	}
	return out.String()
}
