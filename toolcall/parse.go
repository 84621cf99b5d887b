package toolcall

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"unicode/utf8"
)

// Parse splits a finished answer into its text and its calls. Text outside
// the calls (before the first, and any after the last) is the content,
// trimmed when there are calls. tools, when given, tell the Qwen XML
// format which parameters are strings (others are read as JSON). An
// answer whose calls do not parse is returned whole as content, with the
// error that says why; an answer without calls returns it unchanged and
// no error.
func (f *Format) Parse(text string, tools []Tool) (string, []Call, error) {
	content, calls, err := f.parse(text, tools)
	if err != nil {
		return text, nil, err
	}
	if len(calls) == 0 {
		return text, nil, nil
	}
	for i := range calls {
		if calls[i].ID == "" {
			calls[i].ID = NewID()
		}
		if len(calls[i].Arguments) == 0 {
			calls[i].Arguments = json.RawMessage("{}")
		}
	}
	content = strings.TrimSpace(content)
	if f.marker != "" { // the start of another call, cut off by the token limit
		content = strings.TrimSpace(content[:len(content)-partialSuffix(content, f.marker)])
	}
	return content, calls, nil
}

// start returns where the calls begin in text, or -1.
func (f *Format) start(text string) int {
	if f.marker != "" {
		return strings.Index(text, f.marker)
	}
	// llama3-json: a JSON object at the start, possibly after a python tag.
	t := strings.TrimLeft(text, " \t\r\n")
	for _, tag := range []string{"<|python_tag|>", "<|python_start|>"} {
		if strings.HasPrefix(t, tag) {
			return len(text) - len(t)
		}
	}
	if strings.HasPrefix(t, "{") {
		return len(text) - len(t)
	}
	return -1
}

func (f *Format) parse(text string, tools []Tool) (string, []Call, error) {
	at := f.start(text)
	if at < 0 {
		return text, nil, nil
	}
	content, rest := text[:at], text[at:]
	var calls []Call
	var err error
	var tail string
	switch f.name {
	case Llama3JSON:
		calls, tail, err = parseLlama(rest)
	case MistralV7:
		calls, tail, err = parseMistralV7(strings.TrimPrefix(rest, f.marker))
	case MistralV11:
		calls, tail, err = parseMistralV11(rest)
	case LFM2:
		calls, tail, err = parseLFM2(rest)
	case QwenXML, Hermes:
		calls, tail, err = parseTagged(rest, tools)
	case Gemma4:
		calls, tail, err = parseGemma4(rest)
	default:
		err = fmt.Errorf("%w: format %q", ErrInvalid, f.name)
	}
	if err != nil {
		return "", nil, err
	}
	return content + tail, calls, nil
}

// compact returns raw as compact JSON, checking that it is an object.
func compactObject(raw []byte) (json.RawMessage, error) {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || raw[0] != '{' {
		return nil, fmt.Errorf("%w: arguments %q are not a JSON object", ErrInvalid, truncate(string(raw)))
	}
	var b bytes.Buffer
	if err := json.Compact(&b, raw); err != nil {
		return nil, fmt.Errorf("%w: arguments: %v", ErrInvalid, err)
	}
	return json.RawMessage(b.Bytes()), nil
}

func truncate(s string) string {
	if len(s) > 80 {
		return s[:80] + "…"
	}
	return s
}

// jsonCall reads {"name": ..., "arguments"|"parameters": ...} (arguments
// as an object or a JSON string holding one).
func jsonCall(raw json.RawMessage) (Call, error) {
	var obj struct {
		Name       string          `json:"name"`
		Arguments  json.RawMessage `json:"arguments"`
		Parameters json.RawMessage `json:"parameters"`
		ID         string          `json:"id"`
	}
	if err := json.Unmarshal(raw, &obj); err != nil {
		return Call{}, fmt.Errorf("%w: call %q: %v", ErrInvalid, truncate(string(raw)), err)
	}
	if obj.Name == "" {
		return Call{}, fmt.Errorf("%w: call %q has no name", ErrInvalid, truncate(string(raw)))
	}
	args := obj.Arguments
	if len(args) == 0 {
		args = obj.Parameters
	}
	if len(args) == 0 || string(args) == "null" {
		args = json.RawMessage("{}")
	}
	if args[0] == '"' {
		var s string
		if err := json.Unmarshal(args, &s); err != nil {
			return Call{}, fmt.Errorf("%w: call arguments: %v", ErrInvalid, err)
		}
		args = json.RawMessage(s)
	}
	a, err := compactObject(args)
	if err != nil {
		return Call{}, err
	}
	return Call{ID: obj.ID, Name: obj.Name, Arguments: a}, nil
}

// decodeOne decodes the JSON value at the start of s and returns it with
// the rest.
func decodeOne(s string) (json.RawMessage, string, error) {
	dec := json.NewDecoder(strings.NewReader(s))
	var v json.RawMessage
	if err := dec.Decode(&v); err != nil {
		return nil, s, fmt.Errorf("%w: %v in %q", ErrInvalid, err, truncate(s))
	}
	return v, s[dec.InputOffset():], nil
}

func parseLlama(s string) ([]Call, string, error) {
	s = strings.TrimLeft(s, " \t\r\n")
	s = strings.TrimPrefix(s, "<|python_tag|>")
	if rest, ok := strings.CutPrefix(s, "<|python_start|>"); ok {
		s = rest
		if i := strings.Index(s, "<|python_end|>"); i >= 0 {
			s = s[:i] + s[i+len("<|python_end|>"):]
		}
	}
	var calls []Call
	for {
		s = strings.TrimLeft(s, " \t\r\n;")
		if !strings.HasPrefix(s, "{") {
			break
		}
		v, rest, err := decodeOne(s)
		if err != nil {
			return nil, "", err
		}
		c, err := jsonCall(v)
		if err != nil {
			return nil, "", err
		}
		calls = append(calls, c)
		s = rest
	}
	return calls, s, nil
}

func parseMistralV7(s string) ([]Call, string, error) {
	s = strings.TrimLeft(s, " \t\r\n")
	v, rest, err := decodeOne(s)
	if err != nil {
		return nil, "", err
	}
	var list []json.RawMessage
	if v[0] == '{' {
		list = []json.RawMessage{v}
	} else if err := json.Unmarshal(v, &list); err != nil {
		return nil, "", fmt.Errorf("%w: [TOOL_CALLS] must be followed by a JSON array of calls: %v", ErrInvalid, err)
	}
	var calls []Call
	for _, x := range list {
		c, err := jsonCall(x)
		if err != nil {
			return nil, "", err
		}
		calls = append(calls, c)
	}
	return calls, rest, nil
}

func parseMistralV11(s string) ([]Call, string, error) {
	var calls []Call
	for {
		rest, ok := strings.CutPrefix(strings.TrimLeft(s, " \t\r\n"), "[TOOL_CALLS]")
		if !ok {
			break
		}
		i := strings.Index(rest, "[ARGS]")
		if i < 0 {
			return nil, "", fmt.Errorf("%w: [TOOL_CALLS] without [ARGS] in %q", ErrInvalid, truncate(rest))
		}
		name, id := rest[:i], ""
		if n, cid, ok := strings.Cut(name, "[CALL_ID]"); ok {
			name, id = n, cid
		}
		v, after, err := decodeOne(rest[i+len("[ARGS]"):])
		if err != nil {
			return nil, "", err
		}
		args, err := compactObject(v)
		if err != nil {
			return nil, "", err
		}
		calls = append(calls, Call{ID: strings.TrimSpace(id), Name: strings.TrimSpace(name), Arguments: args})
		s = after
	}
	return calls, s, nil
}

func parseTagged(s string, tools []Tool) ([]Call, string, error) {
	var calls []Call
	var tail strings.Builder
	for {
		i := strings.Index(s, "<tool_call>")
		if i < 0 {
			tail.WriteString(s)
			break
		}
		tail.WriteString(s[:i])
		s = s[i+len("<tool_call>"):]
		body := s
		if j := strings.Index(s, "</tool_call>"); j >= 0 {
			body, s = s[:j], s[j+len("</tool_call>"):]
		} else {
			s = ""
		}
		body = strings.TrimSpace(body)
		if strings.HasPrefix(body, "{") {
			v, _, err := decodeOne(body)
			if err != nil {
				return nil, "", err
			}
			c, err := jsonCall(v)
			if err != nil {
				return nil, "", err
			}
			calls = append(calls, c)
			continue
		}
		c, err := xmlCall(body, tools)
		if err != nil {
			return nil, "", err
		}
		calls = append(calls, c)
	}
	return calls, tail.String(), nil
}

// xmlCall reads <function=name><parameter=k>\nv\n</parameter>...</function>.
func xmlCall(body string, tools []Tool) (Call, error) {
	rest, ok := strings.CutPrefix(body, "<function=")
	if !ok {
		return Call{}, fmt.Errorf("%w: <tool_call> holds neither JSON nor <function=...>: %q", ErrInvalid, truncate(body))
	}
	gt := strings.IndexByte(rest, '>')
	if gt < 0 {
		return Call{}, fmt.Errorf("%w: unterminated <function=", ErrInvalid)
	}
	name := strings.TrimSpace(rest[:gt])
	rest = rest[gt+1:]
	if j := strings.LastIndex(rest, "</function>"); j >= 0 {
		rest = rest[:j]
	}
	stringParams := map[string]bool{}
	for _, t := range tools {
		if t.Name != name {
			continue
		}
		props, _ := properties(parameters(t))
		for _, p := range props {
			stringParams[p.name] = p.isString
		}
	}
	var b bytes.Buffer
	b.WriteByte('{')
	n := 0
	for {
		i := strings.Index(rest, "<parameter=")
		if i < 0 {
			break
		}
		rest = rest[i+len("<parameter="):]
		gt := strings.IndexByte(rest, '>')
		if gt < 0 {
			return Call{}, fmt.Errorf("%w: unterminated <parameter=", ErrInvalid)
		}
		key := strings.TrimSpace(rest[:gt])
		rest = rest[gt+1:]
		val := rest
		if j := strings.Index(rest, "</parameter>"); j >= 0 {
			val, rest = rest[:j], rest[j+len("</parameter>"):]
		} else {
			rest = ""
		}
		val = strings.TrimPrefix(val, "\n")
		val = strings.TrimSuffix(val, "\n")
		if n > 0 {
			b.WriteByte(',')
		}
		n++
		b.WriteString(jsonString(key))
		b.WriteByte(':')
		isString, known := stringParams[key]
		if t := strings.TrimSpace(val); (!known || !isString) && json.Valid([]byte(t)) {
			var c bytes.Buffer
			_ = json.Compact(&c, []byte(t))
			b.Write(c.Bytes())
		} else {
			b.WriteString(jsonString(val))
		}
	}
	b.WriteByte('}')
	return Call{Name: name, Arguments: json.RawMessage(b.Bytes())}, nil
}

func parseLFM2(s string) ([]Call, string, error) {
	s = strings.TrimPrefix(s, "<|tool_call_start|>")
	end := strings.Index(s, "<|tool_call_end|>")
	body, tail := s, ""
	if end >= 0 {
		body, tail = s[:end], s[end+len("<|tool_call_end|>"):]
	}
	p := &pyParser{s: strings.TrimSpace(body)}
	calls, err := p.calls()
	if err != nil {
		return nil, "", err
	}
	return calls, tail, nil
}

func parseGemma4(s string) ([]Call, string, error) {
	var calls []Call
	for {
		rest, ok := strings.CutPrefix(strings.TrimLeft(s, " \t\r\n"), "<|tool_call>")
		if !ok {
			break
		}
		rest = strings.TrimPrefix(rest, "call:")
		brace := strings.IndexByte(rest, '{')
		if brace < 0 {
			return nil, "", fmt.Errorf("%w: Gemma call without arguments: %q", ErrInvalid, truncate(rest))
		}
		name := strings.TrimSpace(rest[:brace])
		p := &pyParser{s: rest[brace:], gemma: true}
		v, err := p.value()
		if err != nil {
			return nil, "", err
		}
		args, err := compactObject(v)
		if err != nil {
			return nil, "", err
		}
		calls = append(calls, Call{Name: name, Arguments: args})
		s = strings.TrimPrefix(strings.TrimLeft(p.s[p.i:], " \t\r\n"), "<tool_call|>")
	}
	return calls, s, nil
}

// pyParser reads Python literals and calls (LFM2) or Gemma 4's argument
// notation (gemma: strings in <|"|>, bare keys) into JSON.
type pyParser struct {
	s     string
	i     int
	gemma bool
}

const gemmaQuote = `<|"|>`

func (p *pyParser) ws() {
	for p.i < len(p.s) && strings.IndexByte(" \t\r\n", p.s[p.i]) >= 0 {
		p.i++
	}
}

func (p *pyParser) errorf(format string, args ...any) error {
	return fmt.Errorf("%w: %s at %d of %q", ErrInvalid, fmt.Sprintf(format, args...), p.i, truncate(p.s))
}

func (p *pyParser) eat(c byte) bool {
	p.ws()
	if p.i < len(p.s) && p.s[p.i] == c {
		p.i++
		return true
	}
	return false
}

func (p *pyParser) ident() string {
	p.ws()
	j := p.i
	for j < len(p.s) && (p.s[j] == '_' || p.s[j] == '-' || p.s[j] == '.' || p.s[j] >= 'a' && p.s[j] <= 'z' || p.s[j] >= 'A' && p.s[j] <= 'Z' || p.s[j] >= '0' && p.s[j] <= '9') {
		j++
	}
	id := p.s[p.i:j]
	p.i = j
	return id
}

// calls reads [f(a=1, b="x"), g()] (the brackets optional).
func (p *pyParser) calls() ([]Call, error) {
	bracket := p.eat('[')
	var calls []Call
	for {
		name := p.ident()
		if name == "" {
			return nil, p.errorf("a function name expected")
		}
		if !p.eat('(') {
			return nil, p.errorf("'(' expected after %s", name)
		}
		var b bytes.Buffer
		b.WriteByte('{')
		for n := 0; !p.eat(')'); n++ {
			if n > 0 && !p.eat(',') {
				return nil, p.errorf("',' or ')' expected")
			}
			if p.eat(')') {
				break
			}
			key := p.ident()
			if key == "" || !p.eat('=') {
				return nil, p.errorf("keyword argument expected")
			}
			v, err := p.value()
			if err != nil {
				return nil, err
			}
			writeMember(&b, n, key, v)
		}
		b.WriteByte('}')
		calls = append(calls, Call{Name: name, Arguments: json.RawMessage(b.Bytes())})
		if !p.eat(',') {
			break
		}
	}
	if bracket && !p.eat(']') {
		return nil, p.errorf("']' expected")
	}
	return calls, nil
}

// value reads one literal and returns it as JSON.
func (p *pyParser) value() (json.RawMessage, error) {
	p.ws()
	if p.i >= len(p.s) {
		return nil, p.errorf("a value expected")
	}
	rest := p.s[p.i:]
	switch c := rest[0]; {
	case p.gemma && strings.HasPrefix(rest, gemmaQuote):
		end := strings.Index(rest[len(gemmaQuote):], gemmaQuote)
		if end < 0 {
			return nil, p.errorf("unterminated string")
		}
		p.i += 2*len(gemmaQuote) + end
		return json.RawMessage(jsonString(rest[len(gemmaQuote) : len(gemmaQuote)+end])), nil
	case c == '"' || c == '\'':
		return p.str(c)
	case c == '{':
		p.i++
		var b bytes.Buffer
		b.WriteByte('{')
		for n := 0; !p.eat('}'); n++ {
			if n > 0 && !p.eat(',') {
				return nil, p.errorf("',' or '}' expected")
			}
			if p.eat('}') {
				break
			}
			var key string
			p.ws()
			if p.i < len(p.s) && (p.s[p.i] == '"' || p.s[p.i] == '\'' || strings.HasPrefix(p.s[p.i:], gemmaQuote)) {
				k, err := p.value()
				if err != nil {
					return nil, err
				}
				if err := json.Unmarshal(k, &key); err != nil {
					return nil, p.errorf("a string key expected")
				}
			} else {
				key = p.ident()
			}
			if key == "" || !p.eat(':') {
				return nil, p.errorf("key: value expected")
			}
			v, err := p.value()
			if err != nil {
				return nil, err
			}
			writeMember(&b, n, key, v)
		}
		b.WriteByte('}')
		return json.RawMessage(b.Bytes()), nil
	case c == '[' || c == '(':
		closer := byte(']')
		if c == '(' {
			closer = ')'
		}
		p.i++
		var b bytes.Buffer
		b.WriteByte('[')
		for n := 0; !p.eat(closer); n++ {
			if n > 0 && !p.eat(',') {
				return nil, p.errorf("',' or %q expected", closer)
			}
			if p.eat(closer) {
				break
			}
			v, err := p.value()
			if err != nil {
				return nil, err
			}
			if n > 0 {
				b.WriteByte(',')
			}
			b.Write(v)
		}
		b.WriteByte(']')
		return json.RawMessage(b.Bytes()), nil
	}
	word := p.ident()
	switch word {
	case "True", "true":
		return json.RawMessage("true"), nil
	case "False", "false":
		return json.RawMessage("false"), nil
	case "None", "null":
		return json.RawMessage("null"), nil
	}
	// A number, possibly signed.
	j := p.i - len(word)
	p.i = j
	k := j
	for k < len(p.s) && strings.IndexByte("+-0123456789.eE", p.s[k]) >= 0 {
		k++
	}
	num := p.s[j:k]
	if f, err := strconv.ParseFloat(num, 64); err == nil && num != "" {
		p.i = k
		if json.Valid([]byte(num)) {
			return json.RawMessage(num), nil
		}
		return json.RawMessage(strconv.FormatFloat(f, 'g', -1, 64)), nil
	}
	return nil, p.errorf("a value expected")
}

// str reads a Python string literal quoted with q.
func (p *pyParser) str(q byte) (json.RawMessage, error) {
	p.i++
	var b strings.Builder
	for p.i < len(p.s) {
		c := p.s[p.i]
		switch {
		case c == q:
			p.i++
			return json.RawMessage(jsonString(b.String())), nil
		case c == '\\' && p.i+1 < len(p.s):
			p.i++
			e := p.s[p.i]
			p.i++
			switch e {
			case 'n':
				b.WriteByte('\n')
			case 't':
				b.WriteByte('\t')
			case 'r':
				b.WriteByte('\r')
			case 'u':
				if p.i+4 <= len(p.s) {
					if r, err := strconv.ParseUint(p.s[p.i:p.i+4], 16, 32); err == nil {
						b.WriteRune(rune(r))
						p.i += 4
						continue
					}
				}
				b.WriteString(`\u`)
			default:
				b.WriteByte(e)
			}
		default:
			r, size := utf8.DecodeRuneInString(p.s[p.i:])
			b.WriteRune(r)
			p.i += size
		}
	}
	return nil, p.errorf("unterminated string")
}

// writeMember writes the n-th member (from 0) of a JSON object being built
// in b: a comma before all but the first, the key as a JSON string, the
// value as given.
func writeMember(b *bytes.Buffer, n int, key string, v []byte) {
	if n > 0 {
		b.WriteByte(',')
	}
	b.WriteString(jsonString(key))
	b.WriteByte(':')
	b.Write(v)
}
