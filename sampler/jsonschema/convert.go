package jsonschema

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"regexp"
	"sort"
	"strconv"
	"strings"
)

// Primitive rules, as llama.cpp writes them.
var primitives = map[string]string{
	"space":            `| " " | "\n" [ \t]{0,20}`,
	"boolean":          `("true" | "false") space`,
	"null":             `"null" space`,
	"integral-part":    `[0] | [1-9] [0-9]{0,15}`,
	"decimal-part":     `[0-9]{1,16}`,
	"integer":          `("-"? integral-part) space`,
	"number":           `("-"? integral-part) ("." decimal-part)? ([eE] [-+]? integral-part)? space`,
	"char":             `[^"\\\x7F\x00-\x1F] | [\\] (["\\bfnrt] | "u" [0-9a-fA-F]{4})`,
	"string":           `"\"" char* "\"" space`,
	"value":            `object | array | string | number | boolean | null`,
	"object":           `"{" space ( string ":" space value ("," space string ":" space value)* )? "}" space`,
	"array":            `"[" space ( value ("," space value)* )? "]" space`,
	"date":             `[0-9]{4} "-" ( "0" [1-9] | "1" [0-2] ) "-" ( "0" [1-9] | [1-2] [0-9] | "3" [0-1] )`,
	"time":             `([01] [0-9] | "2" [0-3]) ":" [0-5] [0-9] ":" [0-5] [0-9] ( "." [0-9]{3} )? ( "Z" | ( "+" | "-" ) ( [01] [0-9] | "2" [0-3] ) ":" [0-5] [0-9] )`,
	"date-string":      `"\"" date "\"" space`,
	"time-string":      `"\"" time "\"" space`,
	"date-time-string": `"\"" date "T" time "\"" space`,
	"uuid":             `"\"" [0-9a-fA-F]{8} "-" [0-9a-fA-F]{4} "-" [0-9a-fA-F]{4} "-" [0-9a-fA-F]{4} "-" [0-9a-fA-F]{12} "\"" space`,
}

// primitiveDeps lists the rules each primitive uses.
var primitiveDeps = map[string][]string{
	"boolean": {"space"}, "null": {"space"}, "integer": {"integral-part", "space"},
	"number": {"integral-part", "decimal-part", "space"}, "string": {"char", "space"},
	"value":  {"object", "array", "string", "number", "boolean", "null"},
	"object": {"space", "string", "value"}, "array": {"space", "value"},
	"date-string": {"date", "space"}, "time-string": {"time", "space"}, "date-time-string": {"date", "time", "space"},
	"uuid": {"space"},
}

type converter struct {
	b    *Builder
	root map[string]any
	refs map[string]string // $ref → rule name
}

// use adds primitive rule name (and what it needs) and returns its name.
func (b *Builder) use(name string) string {
	if _, ok := b.rules[name]; ok {
		return name
	}
	b.rules[name] = primitives[name]
	for _, d := range primitiveDeps[name] {
		b.use(d)
	}
	return name
}

func (c *converter) use(name string) string { return c.b.use(name) }

func (c *converter) add(hint, body string) string { return c.b.Rule(hint, body) }

var nonName = regexp.MustCompile(`[^a-zA-Z0-9-]+`)

// newName returns an unused rule name made from hint.
func (b *Builder) newName(hint string) string {
	name := strings.Trim(nonName.ReplaceAllString(hint, "-"), "-")
	if name == "" {
		name = "r"
	}
	if _, taken := b.rules[name]; taken || primitives[name] != "" || name == "root" {
		for {
			b.n++
			n := fmt.Sprintf("%s-%d", name, b.n)
			if _, taken := b.rules[n]; !taken && primitives[n] == "" {
				name = n
				break
			}
		}
	}
	b.rules[name] = ""
	return name
}

// literal is the GBNF literal matching the JSON encoding of v, with space.
func (c *converter) literal(v any) (string, error) {
	data, err := json.Marshal(withoutOrder(v))
	if err != nil {
		return "", fmt.Errorf("enum/const value %v: %w", v, ErrSchema)
	}
	return gbnfString(string(data)) + " " + c.use("space"), nil
}

// gbnfString quotes s as a GBNF string literal.
func gbnfString(s string) string {
	var b strings.Builder
	b.WriteByte('"')
	for _, r := range s {
		switch r {
		case '"':
			b.WriteString(`\"`)
		case '\\':
			b.WriteString(`\\`)
		case '\n':
			b.WriteString(`\n`)
		case '\r':
			b.WriteString(`\r`)
		case '\t':
			b.WriteString(`\t`)
		default:
			if r < 0x20 {
				fmt.Fprintf(&b, `\x%02X`, r)
			} else {
				b.WriteRune(r)
			}
		}
	}
	b.WriteByte('"')
	return b.String()
}

var unsupported = []string{"pattern", "not", "if", "then", "else", "patternProperties", "dependentSchemas", "contains", "uniqueItems"}

// visit returns the GBNF expression for schema s; name hints rule names.
func (c *converter) visit(s map[string]any, name string) (string, error) {
	for _, k := range unsupported {
		if _, ok := s[k]; ok {
			return "", fmt.Errorf("%q is not supported (at %s): %w", k, name, ErrSchema)
		}
	}
	if ref, ok := s["$ref"]; ok {
		r, ok := ref.(string)
		if !ok {
			return "", fmt.Errorf("$ref is %T, not a string (at %s): %w", ref, name, ErrSchema)
		}
		return c.ref(r)
	}
	if v, ok := s["const"]; ok {
		return c.literal(v)
	}
	if e, ok := s["enum"]; ok {
		list, ok := e.([]any)
		if !ok || len(list) == 0 {
			return "", fmt.Errorf("enum must be a non-empty array (at %s): %w", name, ErrSchema)
		}
		var alts []string
		for _, v := range list {
			l, err := c.literal(v)
			if err != nil {
				return "", err
			}
			alts = append(alts, l)
		}
		return "(" + strings.Join(alts, " | ") + ")", nil
	}
	for _, k := range []string{"anyOf", "oneOf"} {
		if a, ok := s[k]; ok {
			return c.alternatives(a, name, k)
		}
	}
	if a, ok := s["allOf"]; ok {
		list, ok := a.([]any)
		if !ok || len(list) != 1 {
			return "", fmt.Errorf("allOf with other than one schema (at %s): %w", name, ErrSchema)
		}
		sub, ok := list[0].(map[string]any)
		if !ok {
			return "", fmt.Errorf("allOf entry is not a schema (at %s): %w", name, ErrSchema)
		}
		return c.visit(sub, name)
	}
	t, hasType := s["type"]
	if !hasType {
		switch {
		case s["properties"] != nil:
			t = "object"
		case s["items"] != nil || s["prefixItems"] != nil:
			t = "array"
		default:
			return c.use("value"), nil // {}: any JSON value
		}
	}
	switch tt := t.(type) {
	case string:
		return c.typed(tt, s, name)
	case []any:
		var alts []string
		for _, x := range tt {
			ts, ok := x.(string)
			if !ok {
				return "", fmt.Errorf("type list entry %v is not a string (at %s): %w", x, name, ErrSchema)
			}
			e, err := c.typed(ts, s, name+"-"+ts)
			if err != nil {
				return "", err
			}
			alts = append(alts, e)
		}
		if len(alts) == 0 {
			return "", fmt.Errorf("empty type list (at %s): %w", name, ErrSchema)
		}
		return "(" + strings.Join(alts, " | ") + ")", nil
	}
	return "", fmt.Errorf("type is %T, not a string or a list (at %s): %w", t, name, ErrSchema)
}

func (c *converter) alternatives(a any, name, kw string) (string, error) {
	list, ok := a.([]any)
	if !ok || len(list) == 0 {
		return "", fmt.Errorf("%s must be a non-empty array of schemas (at %s): %w", kw, name, ErrSchema)
	}
	var alts []string
	for i, x := range list {
		sub, ok := x.(map[string]any)
		if !ok {
			return "", fmt.Errorf("%s entry %d is not a schema (at %s): %w", kw, i, name, ErrSchema)
		}
		e, err := c.visit(sub, fmt.Sprintf("%s-%d", name, i))
		if err != nil {
			return "", err
		}
		alts = append(alts, c.add(fmt.Sprintf("%s-%d", name, i), e))
	}
	return "(" + strings.Join(alts, " | ") + ")", nil
}

// ref resolves a local $ref into a rule (made once, so recursion works).
func (c *converter) ref(r string) (string, error) {
	if n, ok := c.refs[r]; ok {
		return n, nil
	}
	var path []string
	switch {
	case r == "#":
		path = nil
	case strings.HasPrefix(r, "#/"):
		path = strings.Split(r[2:], "/")
	default:
		return "", fmt.Errorf("$ref %q: only references within the schema (#/...) are supported: %w", r, ErrSchema)
	}
	var cur any = c.root
	for _, p := range path {
		p = strings.ReplaceAll(strings.ReplaceAll(p, "~1", "/"), "~0", "~")
		m, ok := cur.(map[string]any)
		if !ok {
			return "", fmt.Errorf("$ref %q does not resolve: %w", r, ErrSchema)
		}
		if cur, ok = m[p]; !ok {
			return "", fmt.Errorf("$ref %q does not resolve: %w", r, ErrSchema)
		}
	}
	sub, ok := cur.(map[string]any)
	if !ok {
		return "", fmt.Errorf("$ref %q is not a schema: %w", r, ErrSchema)
	}
	hint := "ref"
	if len(path) > 0 {
		hint = path[len(path)-1]
	}
	name := c.add(hint, "") // reserve the name first: the schema may refer to itself
	c.refs[r] = name
	body, err := c.visit(sub, name)
	if err != nil {
		return "", err
	}
	c.b.rules[name] = body
	return name, nil
}

func intOf(s map[string]any, k string, name string) (int, bool, error) {
	v, ok := s[k]
	if !ok {
		return 0, false, nil
	}
	f, ok := v.(float64)
	if !ok || f < 0 || f != math.Trunc(f) || f > 1e6 {
		return 0, false, fmt.Errorf("%s must be a non-negative integer (at %s): %w", k, name, ErrSchema)
	}
	return int(f), true, nil
}

// repeat is item repeated lo..hi times (hi < 0: no bound), separated by sep.
func repeat(item, sep string, lo, hi int) string {
	if hi == 0 {
		return ""
	}
	first := item
	rest := "(" + sep + " " + item + ")"
	var tail string
	switch {
	case hi < 0:
		tail = rest + "{" + strconv.Itoa(max(lo-1, 0)) + ",}"
	default:
		tail = rest + "{" + strconv.Itoa(max(lo-1, 0)) + "," + strconv.Itoa(hi-1) + "}"
	}
	body := first + " " + tail
	if lo == 0 {
		return "(" + body + ")?"
	}
	return body
}

func (c *converter) typed(t string, s map[string]any, name string) (string, error) {
	switch t {
	case "boolean", "null", "integer", "number":
		return c.use(t), nil
	case "string":
		if f, ok := s["format"].(string); ok {
			switch f {
			case "date", "time", "date-time":
				return c.use(f + "-string"), nil
			case "uuid":
				return c.use("uuid"), nil
			}
		}
		lo, hasLo, err := intOf(s, "minLength", name)
		if err != nil {
			return "", err
		}
		hi, hasHi, err := intOf(s, "maxLength", name)
		if err != nil {
			return "", err
		}
		if !hasLo && !hasHi {
			return c.use("string"), nil
		}
		if hasHi && hi < lo {
			return "", fmt.Errorf("maxLength %d < minLength %d (at %s): %w", hi, lo, name, ErrSchema)
		}
		c.use("char")
		rep := "{" + strconv.Itoa(lo) + ",}"
		if hasHi {
			rep = "{" + strconv.Itoa(lo) + "," + strconv.Itoa(hi) + "}"
		}
		return `"\"" char` + rep + ` "\"" ` + c.use("space"), nil
	case "array":
		return c.array(s, name)
	case "object":
		return c.object(s, name)
	}
	return "", fmt.Errorf("unknown type %q (at %s): %w", t, name, ErrSchema)
}

func (c *converter) array(s map[string]any, name string) (string, error) {
	sp := c.use("space")
	if p, ok := s["prefixItems"]; ok {
		list, ok := p.([]any)
		if !ok {
			return "", fmt.Errorf("prefixItems must be an array (at %s): %w", name, ErrSchema)
		}
		var parts []string
		for i, x := range list {
			sub, ok := x.(map[string]any)
			if !ok {
				return "", fmt.Errorf("prefixItems entry %d is not a schema (at %s): %w", i, name, ErrSchema)
			}
			e, err := c.visit(sub, fmt.Sprintf("%s-%d", name, i))
			if err != nil {
				return "", err
			}
			parts = append(parts, c.add(fmt.Sprintf("%s-%d", name, i), e))
		}
		return `"[" ` + sp + " " + strings.Join(parts, ` "," `+sp+" ") + ` "]" ` + sp, nil
	}
	item := c.use("value")
	if it, ok := s["items"]; ok {
		sub, ok := it.(map[string]any)
		if !ok {
			return "", fmt.Errorf("items must be a schema (at %s): %w", name, ErrSchema)
		}
		e, err := c.visit(sub, name+"-item")
		if err != nil {
			return "", err
		}
		item = c.add(name+"-item", e)
	}
	lo, _, err := intOf(s, "minItems", name)
	if err != nil {
		return "", err
	}
	hi, hasHi, err := intOf(s, "maxItems", name)
	if err != nil {
		return "", err
	}
	if !hasHi {
		hi = -1
	} else if hi < lo {
		return "", fmt.Errorf("maxItems %d < minItems %d (at %s): %w", hi, lo, name, ErrSchema)
	}
	return `"[" ` + sp + " " + repeat(item, `","`+" "+sp, lo, hi) + ` "]" ` + sp, nil
}

func (c *converter) object(s map[string]any, name string) (string, error) {
	sp := c.use("space")
	props, _ := s["properties"].(map[string]any)
	if s["properties"] != nil && props == nil {
		return "", fmt.Errorf("properties must be an object (at %s): %w", name, ErrSchema)
	}
	keys := orderedKeys(props)
	if len(keys) == 0 {
		return c.use("object"), nil
	}
	required := map[string]bool{}
	if r, ok := s["required"]; ok {
		list, ok := r.([]any)
		if !ok {
			return "", fmt.Errorf("required must be an array of names (at %s): %w", name, ErrSchema)
		}
		for _, x := range list {
			k, ok := x.(string)
			if !ok {
				return "", fmt.Errorf("required entry %v is not a string (at %s): %w", x, name, ErrSchema)
			}
			if _, ok := props[k]; !ok {
				return "", fmt.Errorf("required property %q is not in properties (at %s): %w", k, name, ErrSchema)
			}
			required[k] = true
		}
	}
	var req, opt []string
	for _, k := range keys {
		sub, ok := props[k].(map[string]any)
		if !ok {
			if b, isBool := props[k].(bool); isBool && b {
				sub = map[string]any{}
			} else {
				return "", fmt.Errorf("property %q is not a schema (at %s): %w", k, name, ErrSchema)
			}
		}
		e, err := c.visit(sub, name+"-"+k)
		if err != nil {
			return "", err
		}
		kq, _ := json.Marshal(k)
		kv := c.add(name+"-"+k+"-kv", gbnfString(string(kq))+" "+sp+` ":" `+sp+" "+c.add(name+"-"+k, e))
		if required[k] {
			req = append(req, kv)
		} else {
			opt = append(opt, kv)
		}
	}
	body := `"{" ` + sp + " "
	sep := `"," ` + sp + " "
	body += strings.Join(req, " "+sep)
	if len(opt) > 0 {
		if len(req) > 0 {
			for _, kv := range opt {
				body += " (" + sep + kv + ")?"
			}
		} else {
			// Any subset of the optional properties, in order.
			rest := make([]string, len(opt)+1)
			for i := len(opt) - 1; i >= 0; i-- {
				rest[i] = c.add(fmt.Sprintf("%s-rest-%d", name, i), "("+sep+opt[i]+")? "+rest[i+1])
			}
			var alts []string
			for i, kv := range opt {
				alts = append(alts, kv+" "+rest[i+1])
			}
			body += "(" + strings.Join(alts, " | ") + ")?"
		}
	}
	return body + ` "}" ` + sp, nil
}

// orderKey holds, in every object decodeSchema decodes, its keys in the
// order the document lists them (JSON objects decode into maps, which
// forget it; the grammar lists properties in the schema's order).
const orderKey = "\x00order"

// withoutOrder returns v without decodeSchema's order entries.
func withoutOrder(v any) any {
	switch v := v.(type) {
	case map[string]any:
		out := make(map[string]any, len(v))
		for k, x := range v {
			if k != orderKey {
				out[k] = withoutOrder(x)
			}
		}
		return out
	case []any:
		out := make([]any, len(v))
		for i, x := range v {
			out[i] = withoutOrder(x)
		}
		return out
	}
	return v
}

// orderedKeys returns the keys of m in the document's order when known,
// else sorted.
func orderedKeys(m map[string]any) []string {
	if order, ok := m[orderKey].([]string); ok {
		return order
	}
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// decodeSchema decodes a JSON schema document, keeping the order of every
// object's keys.
func decodeSchema(data []byte) (map[string]any, error) {
	d := json.NewDecoder(strings.NewReader(string(data)))
	d.UseNumber()
	v, err := decodeOrdered(d, 0)
	if err != nil {
		return nil, fmt.Errorf("schema: %v: %w", err, ErrSchema)
	}
	if d.More() {
		return nil, fmt.Errorf("schema: data after the document: %w", ErrSchema)
	}
	m, ok := v.(map[string]any)
	if !ok {
		return nil, fmt.Errorf("schema is a JSON %T, not an object: %w", v, ErrSchema)
	}
	return m, nil
}

func decodeOrdered(d *json.Decoder, depth int) (any, error) {
	if depth > 64 {
		return nil, errors.New("nested deeper than 64 levels")
	}
	t, err := d.Token()
	if err != nil {
		return nil, err
	}
	switch t := t.(type) {
	case json.Delim:
		switch t {
		case '{':
			m := map[string]any{}
			var order []string
			for d.More() {
				kt, err := d.Token()
				if err != nil {
					return nil, err
				}
				k, _ := kt.(string)
				v, err := decodeOrdered(d, depth+1)
				if err != nil {
					return nil, err
				}
				if _, dup := m[k]; !dup {
					order = append(order, k)
				}
				m[k] = v
			}
			if _, err := d.Token(); err != nil {
				return nil, err
			}
			m[orderKey] = order
			return m, nil
		case '[':
			list := []any{}
			for d.More() {
				v, err := decodeOrdered(d, depth+1)
				if err != nil {
					return nil, err
				}
				list = append(list, v)
			}
			if _, err := d.Token(); err != nil {
				return nil, err
			}
			return list, nil
		}
	case json.Number:
		f, err := t.Float64()
		if err != nil {
			return nil, err
		}
		return f, nil
	}
	return t, nil
}
