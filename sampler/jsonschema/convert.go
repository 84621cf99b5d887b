package jsonschema

import (
	"cmp"
	"encoding/json"
	"errors"
	"fmt"
	"math/big"
	"net/url"
	"regexp"
	"sort"
	"strconv"
	"strings"
)

// Caps on repetition: beyond them the grammar writes fewer (which is still
// valid); a minimum beyond them is refused.
const (
	maxStringLength = 4096
	maxArrayItems   = 1000
)

// Primitive rules. Numbers have at most maxDigits digits before the
// exponent; strings hold valid UTF-8 only.
var primitives = map[string]string{
	"space":       `| " " | "\n" [ \t]{0,20}`,
	"boolean":     `("true" | "false") space`,
	"null":        `"null" space`,
	"integer":     `("0" | "-"? [1-9] [0-9]{0,14}) space`,
	"number":      `"-"? ("0" | [1-9] [0-9]{0,14}) ("." [0-9]{1,15})? ([eE] [-+]? [0-9]{1,2})? space`,
	"char":        rawChars.class() + " | " + escapeRule,
	"char-bmp":    rawChars.intersect(bmpChars).class() + " | " + escapeRule,
	"string":      `"\"" char* "\"" space`,
	"value":       `object | array | string | number | boolean | null`,
	"object":      `"{" space ( string ":" space value ("," space string ":" space value)* )? "}" space`,
	"array":       `"[" space ( value ("," space value)* )? "]" space`,
	"date":        `[0-9]{4} "-" ( ("0" [13578] | "1" [02]) "-" day31 | ("0" [469] | "11") "-" day30 | "02-" day28 ) | leap-year "-02-29"`,
	"day28":       `"0" [1-9] | "1" [0-9] | "2" [0-8]`,
	"day30":       `day28 | "29" | "30"`,
	"day31":       `day30 | "31"`,
	"leap-year":   `[0-9] [0-9] ("0" [48] | [2468] [048] | [13579] [26]) | ("0" [048] | [2468] [048] | [13579] [26]) "00"`,
	"time":        `([01] [0-9] | "2" [0-3]) ":" [0-5] [0-9] ":" [0-5] [0-9] ( "." [0-9]{1,9} )? ( "Z" | [+-] ( [01] [0-9] | "2" [0-3] ) ":" [0-5] [0-9] )`,
	"date-string": `"\"" date "\"" space`,
	"time-string": `"\"" time "\"" space`,
	// UTC ("Z"): what zod's .datetime() accepts by default, and RFC 3339.
	"date-time-string": `"\"" date "T" time-utc "\"" space`,
	"time-utc":         `([01] [0-9] | "2" [0-3]) ":" [0-5] [0-9] ":" [0-5] [0-9] ( "." [0-9]{1,9} )? "Z"`,
	// Conservative forms every common checker accepts (zod, Ajv, RFC 5321/1123 checks).
	"email-string":    `"\"" [a-zA-Z0-9]{1,20} ("." [a-zA-Z0-9]{1,20}){0,2} "@" (hostname-label "."){1,3} [a-z]{2,6} "\"" space`,
	"hostname-string": `"\"" hostname-label ("." hostname-label){0,3} "\"" space`,
	"hostname-label":  `[a-z0-9] ([a-z0-9-]{0,18} [a-z0-9])?`,
	"ipv4-string":     `"\"" ipv4-octet "." ipv4-octet "." ipv4-octet "." ipv4-octet "\"" space`,
	"ipv4-octet":      `"25" [0-5] | "2" [0-4] [0-9] | "1" [0-9] [0-9] | [1-9] [0-9] | [0-9]`,
	// RFC 4122 form with a version (1-8) and the variant (8, 9, a, b), lower case, as zod's .uuid() checks.
	"uuid": `"\"" [0-9a-f]{8} "-" [0-9a-f]{4} "-" [1-8] [0-9a-f]{3} "-" [89ab] [0-9a-f]{3} "-" [0-9a-f]{12} "\"" space`,
}

// primitiveDeps lists the rules each primitive uses.
var primitiveDeps = map[string][]string{
	"boolean": {"space"}, "null": {"space"}, "integer": {"space"}, "number": {"space"},
	"string": {"char", "space"}, "value": {"object", "array", "string", "number", "boolean", "null"},
	"object": {"space", "string", "value"}, "array": {"space", "value"},
	"date": {"day28", "day30", "day31", "leap-year"}, "day30": {"day28"}, "day31": {"day30"},
	"date-string": {"date", "space"}, "time-string": {"time", "space"}, "date-time-string": {"date", "time-utc", "space"},
	"uuid": {"space"}, "email-string": {"hostname-label", "space"}, "hostname-string": {"hostname-label", "space"},
	"ipv4-string": {"ipv4-octet", "space"},
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

var nonName = regexp.MustCompile(`[^a-zA-Z0-9-]+`)

// newName reserves an unused rule name made from hint.
func (b *Builder) newName(hint string) string {
	name := strings.Trim(nonName.ReplaceAllString(hint, "-"), "-")
	if name == "" {
		name = "r"
	}
	if len(name) > 40 {
		name = strings.Trim(name[:40], "-")
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

// Keywords that only annotate; they never change which values are valid.
var annotations = map[string]bool{
	"$schema": true, "$id": true, "$comment": true, "$anchor": true, "$vocabulary": true,
	"$defs": true, "definitions": true, "title": true, "description": true, "default": true,
	"examples": true, "deprecated": true, "readOnly": true, "writeOnly": true,
	"contentMediaType": true, "contentEncoding": true, "contentSchema": true,
	// OpenAPI's: nullable true allows null too (writing no null is still valid).
	"nullable": true, "discriminator": true, "example": true, "externalDocs": true, "xml": true,
}

// Keywords that constrain values and that the converter cannot express.
var refused = []string{
	"not", "if", "then", "else", "patternProperties", "dependentSchemas", "dependentRequired",
	"dependencies", "contains", "minContains", "maxContains", "propertyNames", "minProperties",
	"maxProperties", "unevaluatedProperties", "unevaluatedItems", "$dynamicRef", "$recursiveRef",
	"multipleOf",
}

// Keywords by the type of value they constrain.
var (
	objectKeywords = []string{"properties", "required", "additionalProperties"}
	arrayKeywords  = []string{"items", "prefixItems", "additionalItems", "minItems", "maxItems"}
	stringKeywords = []string{"minLength", "maxLength", "pattern", "format"}
	numberKeywords = []string{"minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum"}
)

// anyChars is a pattern for any one character.
const anyChars = `(?:.|[\n\r\u2028\u2029])`

var typeNames = []string{"null", "boolean", "object", "array", "number", "integer", "string"}

type converter struct {
	b     *Builder
	root  any
	refs  map[string]string // $ref → rule name
	depth int
}

const maxVisits = 10000

func (c *converter) use(name string) string { return c.b.use(name) }

func (c *converter) add(hint, body string) string { return c.b.Rule(hint, body) }

// literal is the GBNF literal matching the JSON text of v, with space.
func (c *converter) literal(v any) string {
	return gbnfString(jsonText(v)) + " " + c.use("space")
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
			if r < 0x20 || r == 0x7F {
				fmt.Fprintf(&b, `\x%02X`, r)
			} else {
				b.WriteRune(r)
			}
		}
	}
	b.WriteByte('"')
	return b.String()
}

func pathJoin(path string, parts ...any) string {
	for _, p := range parts {
		s := fmt.Sprint(p)
		path += "/" + strings.ReplaceAll(strings.ReplaceAll(s, "~", "~0"), "/", "~1")
	}
	return path
}

// visit returns the GBNF expression for one value of schema s (followed by
// space); path is where s is, hint names its rules.
func (c *converter) visit(s any, path, hint string) (string, error) {
	c.depth++
	if c.depth > maxVisits {
		return "", &Error{Path: path, Reason: "the schema is too large or refers to itself without end"}
	}
	switch v := s.(type) {
	case bool:
		if v {
			return c.use("value"), nil
		}
		return "", &Error{Path: path, Reason: "the schema false accepts no value", none: true}
	case *obj:
		return c.visitObj(v, path, hint)
	}
	return "", &Error{Path: path, Reason: "a schema is an object or a boolean, not " + jsonKind(s)}
}

func (c *converter) visitObj(s *obj, path, hint string) (string, error) {
	for _, k := range refused {
		if s.has(k) {
			return "", &Error{Path: path, Keyword: k, Reason: "not supported: no grammar holds exactly the values it allows"}
		}
	}
	if u, ok := s.get("uniqueItems"); ok {
		if b, isBool := u.(bool); !isBool || (b && !atMostOneItem(s)) {
			return "", &Error{Path: path, Keyword: "uniqueItems", Reason: "not supported (a grammar cannot compare items)"}
		}
	}
	if r, ok := s.get("$ref"); ok {
		ref, ok := r.(string)
		if !ok {
			return "", &Error{Path: path, Keyword: "$ref", Reason: "must be a string"}
		}
		if !constrains(s, "$ref") {
			return c.ref(ref, path)
		}
		target, err := c.resolve(ref, path)
		if err != nil {
			return "", err
		}
		rest := s.clone()
		rest.del("$ref")
		m, err := c.mergeSchemas(target, rest, path)
		if err != nil {
			return "", err
		}
		return c.visit(m, path, hint)
	}
	if a, ok := s.get("allOf"); ok {
		list, ok := a.([]any)
		if !ok || len(list) == 0 {
			return "", &Error{Path: path, Keyword: "allOf", Reason: "must be a non-empty array of schemas"}
		}
		var m any = s.clone()
		m.(*obj).del("allOf")
		for i, x := range list {
			var err error
			if m, err = c.mergeSchemas(m, x, pathJoin(path, "allOf", i)); err != nil {
				return "", err
			}
		}
		return c.visit(m, path, hint)
	}
	for _, kw := range []string{"anyOf", "oneOf"} {
		if a, ok := s.get(kw); ok {
			return c.alternatives(s, kw, a, path, hint)
		}
	}
	if s.has("enum") || s.has("const") {
		return c.enum(s, path)
	}
	types, err := c.types(s, path)
	if err != nil {
		return "", err
	}
	if types == nil {
		return c.use("value"), nil
	}
	var alts []string
	for _, t := range types {
		e, err := c.typed(t, s, path, hint)
		if err != nil {
			return "", err
		}
		alts = append(alts, e)
	}
	return alt(alts), nil
}

// atMostOneItem: maxItems ≤ 1, where uniqueItems holds by itself.
func atMostOneItem(s *obj) bool {
	n, ok, err := count(s, "maxItems", "")
	return err == nil && ok && n <= 1
}

// constrains reports whether s has a keyword other than except that
// constrains values (keywords no draft defines are ignored, as validators
// ignore them).
func constrains(s *obj, except ...string) bool {
	for _, k := range s.keys {
		if constraining(k) && !contains(except, k) {
			return true
		}
	}
	return false
}

func constraining(k string) bool {
	switch k {
	case "type", "enum", "const", "anyOf", "oneOf", "allOf", "$ref", "uniqueItems":
		return true
	}
	return contains(refused, k) || contains(objectKeywords, k) || contains(arrayKeywords, k) ||
		contains(stringKeywords, k) || contains(numberKeywords, k)
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

func hasAny(s *obj, keys []string) bool {
	for _, k := range keys {
		if s.has(k) {
			return true
		}
	}
	return false
}

// types returns the types s allows, nil for any value. Without "type",
// the types whose keywords s uses (other types would be valid too; the
// grammar writes these).
func (c *converter) types(s *obj, path string) ([]string, error) {
	t, ok := s.get("type")
	if !ok {
		var out []string
		if hasAny(s, objectKeywords) {
			out = append(out, "object")
		}
		if hasAny(s, arrayKeywords) {
			out = append(out, "array")
		}
		if hasAny(s, stringKeywords) {
			out = append(out, "string")
		}
		if hasAny(s, numberKeywords) {
			out = append(out, "number")
		}
		return out, nil
	}
	var list []any
	switch t := t.(type) {
	case string:
		list = []any{t}
	case []any:
		list = t
	default:
		return nil, &Error{Path: path, Keyword: "type", Reason: "must be a string or an array of strings"}
	}
	if len(list) == 0 {
		return nil, &Error{Path: path, Keyword: "type", Reason: "an empty list allows no value", none: true}
	}
	var out []string
	for _, x := range list {
		ts, ok := x.(string)
		if !ok || !contains(typeNames, ts) {
			return nil, &Error{Path: path, Keyword: "type", Reason: fmt.Sprintf("unknown type %v", jsonText(x))}
		}
		if !contains(out, ts) {
			out = append(out, ts)
		}
	}
	if contains(out, "number") && contains(out, "integer") {
		out = removeString(out, "integer")
	}
	return out, nil
}

func removeString(list []string, s string) []string {
	var out []string
	for _, x := range list {
		if x != s {
			out = append(out, x)
		}
	}
	return out
}

func (c *converter) typed(t string, s *obj, path, hint string) (string, error) {
	switch t {
	case "boolean", "null":
		return c.use(t), nil
	case "integer", "number":
		r, err := readRange(s, path)
		if err != nil {
			return "", err
		}
		if !r.bounded() {
			return c.use(t), nil
		}
		var e string
		if t == "integer" {
			e, err = integerGrammar(r, path)
		} else {
			e, err = numberGrammar(r, path)
		}
		if err != nil {
			return "", err
		}
		return c.add(hint+"-"+t, e+" "+c.use("space")), nil
	case "string":
		return c.str(s, path, hint)
	case "array":
		return c.array(s, path, hint)
	case "object":
		return c.object(s, path, hint)
	}
	return "", &Error{Path: path, Keyword: "type", Reason: "unknown type " + t}
}

// count reads a non-negative integer keyword.
func count(s *obj, k, path string) (int, bool, error) {
	v, ok := s.get(k)
	if !ok {
		return 0, false, nil
	}
	r, _, isNum := number(v)
	if !isNum || r.Sign() < 0 || !r.IsInt() {
		return 0, false, &Error{Path: path, Keyword: k, Reason: "must be a non-negative integer"}
	}
	if !r.Num().IsInt64() || r.Num().Int64() > 1<<30 {
		return 1 << 30, true, nil
	}
	return int(r.Num().Int64()), true, nil
}

// bounds reads a pair like minLength/maxLength; hi is -1 when absent.
// Above limit, hi becomes limit (fewer is still valid); lo above limit is
// refused.
func bounds(s *obj, loKey, hiKey, path string, limit int) (lo, hi int, err error) {
	lo, _, err = count(s, loKey, path)
	if err != nil {
		return 0, 0, err
	}
	hi, hasHi, err := count(s, hiKey, path)
	if err != nil {
		return 0, 0, err
	}
	if !hasHi {
		hi = -1
	}
	if hasHi && hi < lo {
		return 0, 0, &Error{Path: path, Keyword: hiKey, Reason: fmt.Sprintf("%s %d < %s %d allows nothing", hiKey, hi, loKey, lo), none: true}
	}
	if lo > limit {
		return 0, 0, &Error{Path: path, Keyword: loKey, Reason: fmt.Sprintf("above %d is not supported", limit)}
	}
	if hi > limit {
		hi = limit
	}
	return lo, hi, nil
}

func repeatCount(lo, hi int) string {
	switch {
	case hi < 0:
		return "{" + strconv.Itoa(lo) + ",}"
	case lo == hi:
		return "{" + strconv.Itoa(lo) + "}"
	}
	return "{" + strconv.Itoa(lo) + "," + strconv.Itoa(hi) + "}"
}

func (c *converter) str(s *obj, path, hint string) (string, error) {
	lo, hi, err := bounds(s, "minLength", "maxLength", path, maxStringLength)
	if err != nil {
		return "", err
	}
	lengths := s.has("minLength") || s.has("maxLength")
	var d *dfa // the strings format and pattern allow, when lengths or both need an automaton
	kw := "pattern"
	if f, ok := s.get("format"); ok {
		name, _ := f.(string)
		rule := map[string]string{"date": "date-string", "time": "time-string", "date-time": "date-time-string", "uuid": "uuid",
			"email": "email-string", "hostname": "hostname-string", "ipv4": "ipv4-string"}[name]
		if rule == "" {
			return "", &Error{Path: path, Keyword: "format", Reason: fmt.Sprintf("format %s is not supported (date, time, date-time, uuid, email, hostname and ipv4 are)", jsonText(f))}
		}
		if !s.has("pattern") && !lengths {
			return c.use(rule), nil
		}
		if d, err = formatDFA(name); err != nil {
			return "", &Error{Path: path, Keyword: "format", Reason: err.Error()}
		}
		kw = "format"
	}
	if p, ok := s.get("pattern"); ok {
		ps, ok := p.(string)
		if !ok {
			return "", &Error{Path: path, Keyword: "pattern", Reason: "must be a string"}
		}
		dp, err := compilePattern(ps)
		if err != nil {
			return "", &Error{Path: path, Keyword: "pattern", Reason: err.Error()}
		}
		if d != nil {
			if dp, err = intersect(d, dp); err != nil {
				return "", &Error{Path: path, Keyword: "pattern", Reason: err.Error() + " (with the format)"}
			}
		}
		d, kw = dp, "pattern"
	}
	if d != nil {
		name, err := c.b.stringRules(hint+"-"+kw, d, lo, hi)
		if err != nil {
			return "", &Error{Path: path, Keyword: kw, Reason: err.Error()}
		}
		if name == "" {
			return "", &Error{Path: path, Keyword: kw, Reason: "no string matches it (with the format, pattern and lengths allowed)", none: true}
		}
		return `"\"" ` + name + ` "\"" ` + c.use("space"), nil
	}
	if !lengths {
		return c.use("string"), nil
	}
	c.use("char-bmp")
	return `"\"" char-bmp` + repeatCount(lo, hi) + ` "\"" ` + c.use("space"), nil
}

// enum is the alternatives of enum and const, filtered by type.
func (c *converter) enum(s *obj, path string) (string, error) {
	var values []any
	if e, ok := s.get("enum"); ok {
		list, ok := e.([]any)
		if !ok || len(list) == 0 {
			return "", &Error{Path: path, Keyword: "enum", Reason: "must be a non-empty array"}
		}
		values = list
	}
	if v, ok := s.get("const"); ok {
		if values != nil && !containsValue(values, v) {
			return "", &Error{Path: path, Keyword: "const", Reason: "not among the enum values"}
		}
		values = []any{v}
	}
	for _, k := range s.keys {
		if constraining(k) && k != "enum" && k != "const" && k != "type" {
			return "", &Error{Path: path, Keyword: k, Reason: "not supported beside enum or const"}
		}
	}
	types, err := c.types(s, path)
	if err != nil {
		return "", err
	}
	var alts []string
	for _, v := range values {
		if types == nil || valueHasType(v, types) {
			alts = append(alts, c.literal(v))
		}
	}
	if len(alts) == 0 {
		return "", &Error{Path: path, Keyword: "enum", Reason: "no value has the type the schema allows", none: true}
	}
	return alt(alts), nil
}

// kindOf is the JSON Schema type of a value ("integer" for integral numbers).
func kindOf(v any) string {
	switch v := v.(type) {
	case nil:
		return "null"
	case bool:
		return "boolean"
	case json.Number:
		if r, _, ok := number(v); ok && r.IsInt() {
			return "integer"
		}
		return "number"
	case string:
		return "string"
	case []any:
		return "array"
	}
	return "object"
}

func valueHasType(v any, types []string) bool {
	k := kindOf(v)
	return contains(types, k) || (k == "integer" && contains(types, "number"))
}

// canonical is v as JSON with sorted keys and exact numbers, for equality.
func canonical(v any) string {
	switch v := v.(type) {
	case json.Number:
		if r, _, ok := number(v); ok {
			return r.RatString()
		}
	case []any:
		parts := make([]string, len(v))
		for i, x := range v {
			parts[i] = canonical(x)
		}
		return "[" + strings.Join(parts, ",") + "]"
	case *obj:
		keys := append([]string(nil), v.keys...)
		sort.Strings(keys)
		parts := make([]string, len(keys))
		for i, k := range keys {
			parts[i] = jsonText(k) + ":" + canonical(v.m[k])
		}
		return "{" + strings.Join(parts, ",") + "}"
	}
	return jsonText(v)
}

func containsValue(list []any, v any) bool {
	cv := canonical(v)
	for _, x := range list {
		if canonical(x) == cv {
			return true
		}
	}
	return false
}

// alternatives handles anyOf and oneOf: each branch merged with the
// keywords beside it. oneOf needs branches that no value satisfies twice.
func (c *converter) alternatives(s *obj, kw string, a any, path, hint string) (string, error) {
	list, ok := a.([]any)
	if !ok || len(list) == 0 {
		return "", &Error{Path: path, Keyword: kw, Reason: "must be a non-empty array of schemas"}
	}
	rest := s.clone()
	rest.del(kw)
	var branches []any
	var firstNone error
	for i, x := range list {
		m, err := c.mergeSchemas(rest, x, pathJoin(path, kw, i))
		if err == nil && m == false {
			err = &Error{Path: pathJoin(path, kw, i), Reason: "the branch allows no value", none: true}
		}
		if allowsNone(err) {
			firstNone = cmp.Or(firstNone, err) // no value lost: leave the branch out
			continue
		}
		if err != nil {
			return "", err
		}
		branches = append(branches, m)
	}
	if len(branches) == 0 {
		return "", firstNone
	}
	if kw == "oneOf" {
		for i := range branches {
			for j := i + 1; j < len(branches); j++ {
				if !c.disjoint(branches[i], branches[j]) {
					return "", &Error{Path: path, Keyword: "oneOf", Reason: fmt.Sprintf("branches %d and %d may both hold for one value (use anyOf, or tell them apart by type or by a required property with distinct const values)", i, j)}
				}
			}
		}
	}
	var alts []string
	for i, m := range branches {
		e, err := c.visit(m, pathJoin(path, kw, i), fmt.Sprintf("%s-%d", hint, i))
		if allowsNone(err) {
			firstNone = cmp.Or(firstNone, err)
			continue
		}
		if err != nil {
			return "", err // a supported branch left out would hide what the schema asks for: say so
		}
		alts = append(alts, c.add(fmt.Sprintf("%s-%d", hint, i), e))
	}
	if len(alts) == 0 {
		return "", firstNone
	}
	return alt(alts), nil
}

// allowsNone: err says a schema allows no value (and nothing else is wrong).
func allowsNone(err error) bool {
	var e *Error
	return errors.As(err, &e) && e.none
}

// disjoint reports whether no value can satisfy both schemas (false when
// it cannot tell).
func (c *converter) disjoint(a, b any) bool {
	ao, ok1 := c.deref(a).(*obj)
	bo, ok2 := c.deref(b).(*obj)
	if !ok1 || !ok2 {
		return false
	}
	ta, tb := c.possibleTypes(ao), c.possibleTypes(bo)
	if ta != nil && tb != nil {
		overlap := false
		for _, x := range ta {
			if contains(tb, x) {
				overlap = true
			}
		}
		if !overlap {
			return true
		}
	}
	if va, vb := enumValues(ao), enumValues(bo); va != nil && vb != nil {
		for _, x := range va {
			if containsValue(vb, x) {
				return false
			}
		}
		return true
	}
	// Objects told apart by a property both require, with values disjoint.
	pa, _ := ao.m["properties"].(*obj)
	pb, _ := bo.m["properties"].(*obj)
	if pa == nil || pb == nil || ta == nil || tb == nil || !onlyObject(ta) || !onlyObject(tb) {
		return false
	}
	for _, k := range pa.keys {
		if !requires(ao, k) || !requires(bo, k) || !pb.has(k) {
			continue
		}
		x, _ := c.deref(pa.m[k]).(*obj)
		y, _ := c.deref(pb.m[k]).(*obj)
		if x == nil || y == nil {
			continue
		}
		if vx, vy := enumValues(x), enumValues(y); vx != nil && vy != nil {
			clash := false
			for _, v := range vx {
				if containsValue(vy, v) {
					clash = true
				}
			}
			if !clash {
				return true
			}
		}
	}
	return false
}

func onlyObject(types []string) bool { return len(types) == 1 && types[0] == "object" }

func requires(s *obj, k string) bool {
	r, _ := s.m["required"].([]any)
	for _, x := range r {
		if x == k {
			return true
		}
	}
	return false
}

func enumValues(s *obj) []any {
	if v, ok := s.get("const"); ok {
		return []any{v}
	}
	if e, ok := s.m["enum"].([]any); ok {
		return e
	}
	return nil
}

// possibleTypes: the types a value of s can have, nil when any ("number"
// stands for "integer" too).
func (c *converter) possibleTypes(s *obj) []string {
	if vals := enumValues(s); vals != nil {
		var out []string
		for _, v := range vals {
			k := kindOf(v)
			if k == "integer" {
				k = "number"
			}
			if !contains(out, k) {
				out = append(out, k)
			}
		}
		return out
	}
	if s.has("anyOf") || s.has("oneOf") || s.has("allOf") || s.has("$ref") {
		return nil
	}
	t, ok := s.get("type")
	if !ok {
		return nil
	}
	var out []string
	add := func(x any) {
		if ts, ok := x.(string); ok {
			if ts == "integer" {
				ts = "number"
			}
			if !contains(out, ts) {
				out = append(out, ts)
			}
		}
	}
	if list, ok := t.([]any); ok {
		for _, x := range list {
			add(x)
		}
	} else {
		add(t)
	}
	return out
}

// deref follows $ref when it is the only constraining keyword.
func (c *converter) deref(s any) any {
	for range 16 {
		o, ok := s.(*obj)
		if !ok {
			return s
		}
		r, ok := o.m["$ref"].(string)
		if !ok || constrains(o, "$ref") {
			return s
		}
		t, err := c.resolve(r, "")
		if err != nil {
			return s
		}
		s = t
	}
	return s
}

// resolve finds the schema a local $ref names.
func (c *converter) resolve(r, path string) (any, error) {
	frag, ok := strings.CutPrefix(r, "#")
	if !ok {
		return nil, &Error{Path: path, Keyword: "$ref", Reason: fmt.Sprintf("%q: only references within the schema (#/...) are supported", r)}
	}
	frag, err := url.PathUnescape(frag)
	if err != nil {
		return nil, &Error{Path: path, Keyword: "$ref", Reason: fmt.Sprintf("%q: %v", r, err)}
	}
	cur := c.root
	if frag != "" {
		if !strings.HasPrefix(frag, "/") {
			return nil, &Error{Path: path, Keyword: "$ref", Reason: fmt.Sprintf("%q: anchors are not supported, only JSON pointers", r)}
		}
		for _, p := range strings.Split(frag[1:], "/") {
			p = strings.ReplaceAll(strings.ReplaceAll(p, "~1", "/"), "~0", "~")
			switch v := cur.(type) {
			case *obj:
				if cur, ok = v.get(p); !ok {
					return nil, &Error{Path: path, Keyword: "$ref", Reason: fmt.Sprintf("%q does not resolve", r)}
				}
			case []any:
				i, err := strconv.Atoi(p)
				if err != nil || i < 0 || i >= len(v) {
					return nil, &Error{Path: path, Keyword: "$ref", Reason: fmt.Sprintf("%q does not resolve", r)}
				}
				cur = v[i]
			default:
				return nil, &Error{Path: path, Keyword: "$ref", Reason: fmt.Sprintf("%q does not resolve", r)}
			}
		}
	}
	switch cur.(type) {
	case *obj, bool:
		return cur, nil
	}
	return nil, &Error{Path: path, Keyword: "$ref", Reason: fmt.Sprintf("%q is not a schema", r)}
}

// ref makes a rule for a $ref target (once, so recursion works).
func (c *converter) ref(r, path string) (string, error) {
	if n, ok := c.refs[r]; ok {
		return n, nil
	}
	target, err := c.resolve(r, path)
	if err != nil {
		return "", err
	}
	hint := "ref"
	if i := strings.LastIndexByte(r, '/'); i >= 0 && i < len(r)-1 {
		hint = r[i+1:]
	}
	name := c.b.newName(hint) // reserved first: the schema may refer to itself
	c.refs[r] = name
	body, err := c.visit(target, strings.TrimPrefix(r, "#"), name)
	if err != nil {
		return "", err
	}
	c.b.rules[name] = body
	return name, nil
}

func (c *converter) array(s *obj, path, hint string) (string, error) {
	sp := c.use("space")
	lo, hi, err := bounds(s, "minItems", "maxItems", path, maxArrayItems)
	if err != nil {
		return "", err
	}
	var prefix []any
	var rest any = true // schema of the items after the prefix; false: none
	if p, ok := s.get("prefixItems"); ok {
		list, ok := p.([]any)
		if !ok {
			return "", &Error{Path: path, Keyword: "prefixItems", Reason: "must be an array of schemas"}
		}
		prefix = list
		if it, ok := s.get("items"); ok {
			rest = it
		}
	} else if it, ok := s.get("items"); ok {
		if list, isList := it.([]any); isList { // draft 4 to 2019-09 tuples
			prefix = list
			if ai, ok := s.get("additionalItems"); ok {
				rest = ai
			}
		} else {
			rest = it
		}
	}
	if _, isList := rest.([]any); isList {
		return "", &Error{Path: path, Keyword: "items", Reason: "must be a schema"}
	}
	// An item whose schema is false cannot be there: the array ends before it.
	for i, x := range prefix {
		if b, ok := x.(bool); ok && !b {
			hi = capAt(hi, i)
			prefix = prefix[:i]
			rest = false
			break
		}
	}
	if b, ok := rest.(bool); ok && !b {
		hi = capAt(hi, len(prefix))
	}
	if hi >= 0 && lo > hi {
		return "", &Error{Path: path, Keyword: "minItems", Reason: "no array length satisfies the item schemas and minItems", none: true}
	}
	// The rules of the items, made once. An item schema no value fits ends
	// the array before it.
	var rules []string
	for i := range prefix {
		if hi >= 0 && i >= hi {
			break
		}
		e, err := c.visit(prefix[i], pathJoin(path, "prefixItems", i), fmt.Sprintf("%s-%d", hint, i))
		if allowsNone(err) {
			hi = i
			break
		}
		if err != nil {
			return "", err
		}
		rules = append(rules, c.add(fmt.Sprintf("%s-%d", hint, i), e))
	}
	var restRule string
	if len(rules) == len(prefix) && (hi < 0 || hi > len(prefix)) {
		e, err := c.visit(rest, pathJoin(path, "items"), hint+"-item")
		switch {
		case allowsNone(err):
			hi = len(prefix)
		case err != nil:
			return "", err
		default:
			restRule = c.add(hint+"-item", e)
		}
	}
	if hi >= 0 && lo > hi {
		return "", &Error{Path: path, Keyword: "minItems", Reason: "no array length satisfies the item schemas and minItems", none: true}
	}
	item := func(i int) (string, error) {
		if i < len(prefix) {
			return rules[i], nil
		}
		return restRule, nil
	}
	sep := `"," ` + sp + " "
	// tail(i): the items from position i on, each after a comma.
	var tail func(i int) (string, error)
	tail = func(i int) (string, error) {
		if hi >= 0 && i >= hi {
			return "", nil
		}
		if i >= len(prefix) {
			n := max(lo-i, 0)
			m := -1
			if hi >= 0 {
				m = hi - i
			}
			return "(" + sep + restRule + ")" + repeatCount(n, m), nil
		}
		e, err := item(i)
		if err != nil {
			return "", err
		}
		t, err := tail(i + 1)
		if err != nil {
			return "", err
		}
		body := sep + e
		if t != "" {
			body += " " + t
		}
		if i >= lo {
			return "(" + body + ")?", nil
		}
		return body, nil
	}
	var body string
	if hi != 0 {
		first, err := item(0)
		if err != nil {
			return "", err
		}
		t, err := tail(1)
		if err != nil {
			return "", err
		}
		body = first
		if t != "" {
			body += " " + t
		}
		if lo == 0 {
			body = "(" + body + ")?"
		}
	}
	return `"[" ` + sp + " " + body + ` "]" ` + sp, nil
}

func capAt(hi, n int) int {
	if hi < 0 || hi > n {
		return n
	}
	return hi
}

func (c *converter) object(s *obj, path, hint string) (string, error) {
	sp := c.use("space")
	var props *obj
	if p, ok := s.get("properties"); ok {
		if props, ok = p.(*obj); !ok {
			return "", &Error{Path: path, Keyword: "properties", Reason: "must be an object of schemas"}
		}
	} else {
		props = newObj()
	}
	var required []string
	if r, ok := s.get("required"); ok {
		list, ok := r.([]any)
		if !ok {
			return "", &Error{Path: path, Keyword: "required", Reason: "must be an array of names"}
		}
		for _, x := range list {
			k, ok := x.(string)
			if !ok {
				return "", &Error{Path: path, Keyword: "required", Reason: "must be an array of names"}
			}
			if !contains(required, k) {
				required = append(required, k)
			}
		}
	}
	var extra any = true
	if ap, ok := s.get("additionalProperties"); ok {
		switch ap.(type) {
		case bool, *obj:
			extra = ap
		default:
			return "", &Error{Path: path, Keyword: "additionalProperties", Reason: "must be a schema"}
		}
	}
	type member struct {
		key      string
		schema   any
		required bool
		path     string
	}
	var members []member
	for _, k := range props.keys {
		ps := props.m[k]
		req := contains(required, k)
		if b, ok := ps.(bool); ok && !b {
			if req {
				return "", &Error{Path: pathJoin(path, "properties", k), Reason: fmt.Sprintf("property %q is required but its schema is false", k), none: true}
			}
			continue
		}
		members = append(members, member{k, ps, req, pathJoin(path, "properties", k)})
	}
	for _, k := range required {
		if props.has(k) {
			continue
		}
		if b, ok := extra.(bool); ok && !b {
			return "", &Error{Path: path, Keyword: "required", Reason: fmt.Sprintf("property %q is required but not in properties, and additionalProperties is false", k), none: true}
		}
		members = append(members, member{k, extra, true, pathJoin(path, "additionalProperties")})
	}
	var kvs []string
	kept := members[:0]
	for _, m := range members {
		e, err := c.visit(m.schema, m.path, hint+"-"+m.key)
		if allowsNone(err) && !m.required {
			continue // a property no value fits may only be absent
		}
		if err != nil {
			return "", err
		}
		kvs = append(kvs, c.add(hint+"-"+m.key+"-kv", gbnfString(jsonText(m.key))+" "+sp+` ":" `+sp+" "+c.add(hint+"-"+m.key, e)))
		kept = append(kept, m)
	}
	members = kept
	if len(members) == 0 && len(props.keys) > 0 {
		return `"{" ` + sp + ` "}" ` + sp, nil // every property listed is false: none may be there
	}
	if len(members) == 0 {
		switch x := extra.(type) {
		case bool:
			if x {
				return c.use("object"), nil
			}
			return `"{" ` + sp + ` "}" ` + sp, nil
		default:
			// Any keys, each value of the additionalProperties schema.
			e, err := c.visit(x, pathJoin(path, "additionalProperties"), hint+"-value")
			if allowsNone(err) {
				return `"{" ` + sp + ` "}" ` + sp, nil
			}
			if err != nil {
				return "", err
			}
			v := c.add(hint+"-value", e)
			kv := c.add(hint+"-kv", c.use("string")+` ":" `+sp+" "+v)
			return `"{" ` + sp + " (" + kv + ` ("," ` + sp + " " + kv + `)*)? "}" ` + sp, nil
		}
	}
	// after[i]: members i.. when one is already written (each after a comma).
	sep := `"," ` + sp + " "
	after := make([]string, len(members)+1)
	for i := len(members) - 1; i >= 0; i-- {
		body := sep + kvs[i]
		if after[i+1] != "" {
			body += " " + after[i+1]
		}
		if !members[i].required {
			body = "(" + sep + kvs[i] + ")?"
			if after[i+1] != "" {
				body += " " + after[i+1]
			}
		}
		after[i] = c.add(fmt.Sprintf("%s-after-%d", hint, i), body)
	}
	// The first member written is i; those before it are optional ones left out.
	var alts []string
	allOptional := true
	for i, m := range members {
		first := kvs[i]
		if after[i+1] != "" {
			first += " " + after[i+1]
		}
		alts = append(alts, first)
		if m.required {
			allOptional = false
			break
		}
	}
	body := alt(alts)
	if allOptional {
		body = group(body) + "?"
	}
	return `"{" ` + sp + " " + body + ` "}" ` + sp, nil
}

// mergeSchemas is a schema for the values both a and b accept (allOf,
// and anyOf/oneOf branches with the keywords beside them).
func (c *converter) mergeSchemas(a, b any, path string) (any, error) {
	c.depth++
	if c.depth > maxVisits {
		return nil, &Error{Path: path, Reason: "the schema is too large or refers to itself without end"}
	}
	if x, ok := a.(bool); ok {
		if x {
			return b, nil
		}
		return false, nil
	}
	if y, ok := b.(bool); ok {
		if y {
			return a, nil
		}
		return false, nil
	}
	ao, ok1 := a.(*obj)
	bo, ok2 := b.(*obj)
	if !ok1 || !ok2 {
		return nil, &Error{Path: path, Reason: "a schema is an object or a boolean"}
	}
	// A side that constrains nothing leaves the other as it is ($ref kept:
	// recursive schemas stay rules that refer to themselves).
	if !constrains(ao) {
		return bo, nil
	}
	if !constrains(bo) {
		return ao, nil
	}
	var err error
	if ao, err = c.expandRef(ao, path); err != nil {
		return nil, err
	}
	if bo, err = c.expandRef(bo, path); err != nil {
		return nil, err
	}
	out := ao.clone()
	// additionalProperties of one side applies to the other's properties it does not list.
	pa, _ := ao.m["properties"].(*obj)
	pb, _ := bo.m["properties"].(*obj)
	for _, k := range bo.keys {
		v := bo.m[k]
		if annotations[k] {
			continue
		}
		old, had := out.get(k)
		if !had {
			out.set(k, v)
			continue
		}
		switch k {
		case "type":
			ta, tb := typeList(old), typeList(v)
			var both []any
			for _, x := range ta {
				for _, y := range tb {
					switch {
					case x == y:
						both = append(both, x)
					case x == "integer" && y == "number", x == "number" && y == "integer":
						both = append(both, "integer")
					}
				}
			}
			if len(both) == 0 {
				return nil, &Error{Path: path, Keyword: "type", Reason: "the schemas combined allow no type", none: true}
			}
			out.set(k, both)
		case "properties":
			if pa == nil || pb == nil {
				return nil, &Error{Path: path, Keyword: "properties", Reason: "must be an object of schemas"}
			}
			m := pa.clone()
			for _, pk := range pb.keys {
				if x, ok := m.get(pk); ok {
					y, err := c.mergeSchemas(x, pb.m[pk], pathJoin(path, "properties", pk))
					if err != nil {
						return nil, err
					}
					m.set(pk, y)
				} else {
					m.set(pk, pb.m[pk])
				}
			}
			out.set(k, m)
		case "required":
			ra, _ := old.([]any)
			rb, _ := v.([]any)
			merged := append([]any(nil), ra...)
			for _, x := range rb {
				if !containsValue(merged, x) {
					merged = append(merged, x)
				}
			}
			out.set(k, merged)
		case "additionalProperties", "items", "additionalItems":
			if _, isList := old.([]any); isList {
				return nil, &Error{Path: path, Keyword: k, Reason: "two tuple forms cannot be combined"}
			}
			if _, isList := v.([]any); isList {
				return nil, &Error{Path: path, Keyword: k, Reason: "two tuple forms cannot be combined"}
			}
			m, err := c.mergeSchemas(old, v, pathJoin(path, k))
			if err != nil {
				return nil, err
			}
			out.set(k, m)
		case "minLength", "minItems", "maxLength", "maxItems":
			x, _, err1 := count(ao, k, path)
			y, _, err2 := count(bo, k, path)
			if err1 != nil || err2 != nil {
				return nil, &Error{Path: path, Keyword: k, Reason: "must be a non-negative integer"}
			}
			if strings.HasPrefix(k, "min") {
				out.set(k, json.Number(strconv.Itoa(max(x, y))))
			} else {
				out.set(k, json.Number(strconv.Itoa(min(x, y))))
			}
		case "minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum":
			// Combined below from both sides' ranges.
		case "pattern":
			pa, ok1 := old.(string)
			pb, ok2 := v.(string)
			if !ok1 || !ok2 {
				return nil, &Error{Path: path, Keyword: k, Reason: "must be a string"}
			}
			if pa != pb {
				// Both must match somewhere: two lookaheads from the start.
				out.set(k, "^(?="+anyChars+"*(?:"+pa+"))(?="+anyChars+"*(?:"+pb+"))")
			}
		case "enum", "const":
			var both []any
			for _, x := range enumOf(k, old) {
				if containsValue(enumOf(k, v), x) {
					both = append(both, x)
				}
			}
			if len(both) == 0 {
				return nil, &Error{Path: path, Keyword: k, Reason: "the schemas combined allow no value", none: true}
			}
			out.del(k)
			out.set("enum", both)
		default:
			if canonical(old) != canonical(v) {
				return nil, &Error{Path: path, Keyword: k, Reason: "two different values cannot be combined"}
			}
		}
	}
	if hasAny(ao, numberKeywords) && hasAny(bo, numberKeywords) {
		ra, err := readRange(ao, path)
		if err != nil {
			return nil, err
		}
		rb, err := readRange(bo, path)
		if err != nil {
			return nil, err
		}
		for _, kw := range numberKeywords {
			out.del(kw)
		}
		lo := tighter(ra.lo, rb.lo, true)
		hi := tighter(ra.hi, rb.hi, false)
		if lo.v != nil {
			out.set(map[bool]string{false: "minimum", true: "exclusiveMinimum"}[lo.excl], ratNumber(lo.v))
		}
		if hi.v != nil {
			out.set(map[bool]string{false: "maximum", true: "exclusiveMaximum"}[hi.excl], ratNumber(hi.v))
		}
	}
	if pa != nil && pb != nil {
		props := out.m["properties"].(*obj)
		for _, side := range []struct{ own, other *obj }{{ao, pb}, {bo, pa}} {
			ap, ok := side.own.get("additionalProperties")
			if !ok {
				continue
			}
			ownProps, _ := side.own.m["properties"].(*obj)
			for _, k := range side.other.keys {
				if ownProps.has(k) {
					continue
				}
				m, err := c.mergeSchemas(props.m[k], ap, pathJoin(path, "properties", k))
				if err != nil {
					return nil, err
				}
				props.set(k, m)
			}
		}
	} else if pa != nil || pb != nil {
		// One side lists properties, the other may restrict them.
		props := out.m["properties"].(*obj).clone()
		other := bo
		if pb != nil {
			other = ao
		}
		if ap, ok := other.get("additionalProperties"); ok {
			for _, k := range props.keys {
				m, err := c.mergeSchemas(props.m[k], ap, pathJoin(path, "properties", k))
				if err != nil {
					return nil, err
				}
				props.set(k, m)
			}
		}
		out.set("properties", props)
	}
	return out, nil
}

// expandRef replaces a $ref by its target merged with the keywords beside it.
func (c *converter) expandRef(s *obj, path string) (*obj, error) {
	for range 32 {
		r, ok := s.m["$ref"].(string)
		if !ok {
			return s, nil
		}
		target, err := c.resolve(r, path)
		if err != nil {
			return nil, err
		}
		rest := s.clone()
		rest.del("$ref")
		switch t := target.(type) {
		case bool:
			if !t {
				return nil, &Error{Path: path, Keyword: "$ref", Reason: "refers to the schema false"}
			}
			s = rest
		case *obj:
			if !constrains(rest) {
				s = t
				continue
			}
			m, err := c.mergeSchemas(t, rest, path)
			if err != nil {
				return nil, err
			}
			mo, ok := m.(*obj)
			if !ok {
				return nil, &Error{Path: path, Keyword: "$ref", Reason: "combines into the schema false"}
			}
			s = mo
		}
	}
	if s.has("$ref") {
		return nil, &Error{Path: path, Keyword: "$ref", Reason: "references nest too deep to combine with other keywords"}
	}
	return s, nil
}

func typeList(v any) []any {
	if list, ok := v.([]any); ok {
		return list
	}
	return []any{v}
}

func enumOf(k string, v any) []any {
	if k == "const" {
		return []any{v}
	}
	list, _ := v.([]any)
	return list
}

func tighter(a, b limit, lower bool) limit {
	if a.v == nil {
		return b
	}
	if b.v == nil {
		return a
	}
	c := a.v.Cmp(b.v)
	switch {
	case c == 0:
		return limit{a.v, a.excl || b.excl}
	case (c > 0) == lower:
		return a
	}
	return b
}

// ratNumber writes a decimal rational as a JSON number.
func ratNumber(r *big.Rat) json.Number {
	neg := r.Sign() < 0
	ip, frac := decimal(new(big.Rat).Abs(r))
	s := ip.String()
	if frac != "" {
		s += "." + frac
	}
	if neg {
		s = "-" + s
	}
	return json.Number(s)
}
