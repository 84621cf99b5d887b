package jsonschema_test

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/vlm-go/vlm/sampler/jsonschema"
)

// languageCase is a schema and JSON texts on both sides of it. valid: the
// schema accepts them and the grammar must too. invalid: the schema
// rejects them (the validator confirms) and the grammar must too.
// unwritten: the schema accepts them but they are outside the form the
// grammar writes (keys out of order, exponents, "-0", characters outside
// the Basic Multilingual Plane under a length, ...): the grammar rejects
// them, which is allowed (it writes a subset of the valid values, never a
// value outside).
type languageCase struct {
	name           string
	schema         string
	valid, invalid []string
	unwritten      []string
	// never: not valid Unicode text (\u escapes naming surrogates, which
	// Go's decoder reads as U+FFFD): the grammar must reject them.
	never []string
	// noValidator: the validator cannot compile the schema (Go's regexp
	// has no lookahead); the sides are checked by hand.
	noValidator bool
}

var languageCases = []languageCase{
	{name: "integer range", schema: `{"type":"integer","minimum":0,"maximum":120}`,
		valid:     []string{`0`, `7`, `99`, `100`, `120`},
		invalid:   []string{`-1`, `121`, `77885585`, `1.5`, `"7"`, `null`},
		unwritten: []string{`1e2`, `-0`, `12.0`}},
	{name: "integer exclusive", schema: `{"type":"integer","exclusiveMinimum":-5,"exclusiveMaximum":5}`,
		valid: []string{`-4`, `0`, `4`}, invalid: []string{`-5`, `5`, `-6`, `10`}},
	{name: "integer fractional bounds", schema: `{"type":"integer","minimum":0.5,"maximum":10.5}`,
		valid: []string{`1`, `10`}, invalid: []string{`0`, `11`}},
	{name: "integer negative", schema: `{"type":"integer","minimum":-1000,"maximum":-7}`,
		valid: []string{`-1000`, `-999`, `-7`, `-10`, `-100`}, invalid: []string{`-1001`, `-6`, `0`, `7`}},
	{name: "integer draft 4 exclusive", schema: `{"$schema":"http://json-schema.org/draft-04/schema#","type":"integer","minimum":3,"exclusiveMinimum":true,"maximum":6}`,
		valid: []string{`4`, `6`}, invalid: []string{`3`, `7`}},
	{name: "zod int", schema: `{"type":"integer","minimum":-9007199254740991,"maximum":9007199254740991}`,
		valid: []string{`0`, `-5`, `999999999999999`}, invalid: []string{`1.5`}, unwritten: []string{`9007199254740991`}},
	{name: "integer from", schema: `{"type":"integer","minimum":10}`,
		valid: []string{`10`, `11`, `999999999999999`}, invalid: []string{`9`, `-5`, `0`},
		unwritten: []string{`1000000000000000`}},
	{name: "number unit", schema: `{"type":"number","minimum":0,"maximum":1}`,
		valid:     []string{`0`, `1`, `0.5`, `0.123456789`, `1.0`, `1.00`, `0.0`},
		invalid:   []string{`1.01`, `-0.1`, `2`, `69`, `1.000000001`},
		unwritten: []string{`1e0`, `5e-1`, `-0`}},
	{name: "number open unit", schema: `{"type":"number","exclusiveMinimum":0,"exclusiveMaximum":1}`,
		valid: []string{`0.5`, `0.0001`, `0.99999`}, invalid: []string{`0`, `1`, `0.0`, `1.0`, `1.5`}},
	{name: "number range", schema: `{"type":"number","minimum":-2.5,"maximum":3.75}`,
		valid:   []string{`-2.5`, `-2.49`, `-0.1`, `0`, `3.75`, `3.7499`, `-2`, `3`},
		invalid: []string{`-2.51`, `3.76`, `3.750001`, `-3`, `4`}},
	{name: "number from", schema: `{"type":"number","minimum":1.5}`,
		valid: []string{`1.5`, `1.51`, `2`, `100.25`}, invalid: []string{`1.49`, `1`, `-2`}},
	{name: "number up to", schema: `{"type":"number","maximum":-0.25}`,
		valid: []string{`-0.25`, `-0.3`, `-1`, `-1000.5`}, invalid: []string{`-0.2`, `0`, `1`}},
	{name: "number negative", schema: `{"type":"number","exclusiveMaximum":0}`,
		valid: []string{`-0.001`, `-1`}, invalid: []string{`0`, `0.0`, `0.1`, `-0.0`}},
	{name: "number", schema: `{"type":"number"}`,
		valid: []string{`0`, `-0`, `1.5`, `-2e10`, `3E-5`, `12`}, invalid: []string{`"1"`, `.5`, `01`, `1.`, `+1`, `NaN`}},
	{name: "integer", schema: `{"type":"integer"}`,
		valid: []string{`0`, `-12`, `123456789012345`}, invalid: []string{`1.5`, `"1"`, `01`}, unwritten: []string{`1.0`, `-0`}},
	{name: "string lengths", schema: `{"type":"string","minLength":2,"maxLength":5}`,
		valid:     []string{`"ab"`, `"héllo"`, `"a\"b"`, `"\u00e9\n"`, `"€€€"`},
		invalid:   []string{`"a"`, `"abcdef"`, "\"\xff\xfe\"", "\"\xc0\xaf\xc0\xaf\"", "\"\xed\xa0\x80\xed\xa0\x80\"", "\"a\x01b\""},
		unwritten: []string{`"😀😀"`}, never: []string{`"\ud800ab"`}},
	{name: "string", schema: `{"type":"string"}`,
		valid: []string{`""`, `"x"`, `"😀"`, `"é"`, `"\n"`, `"\u00e9"`, `"\/"`, `"\u007f"`, "\"\x7f\"", `"\ud7ff"`, `"\uE000"`, `"\/\/"`},
		invalid: []string{"\"a\x01b\"", "\"a\nb\"", "\"\xff\"", "\"\xc0\x80\"", "\"\xe0\x82\x80\"", "\"\xf0\x80\xa0\x80\"", "\"\xed\xa0\x80\"",
			"\"\xf4\x90\x80\x80\"", "\"\xe2\x82\"", `"\x"`, `"abc`},
		unwritten: []string{`"\ud83d\ude00"`}, never: []string{`"\ud800"`, `"\udfff"`}},
	{name: "pattern anchored", schema: `{"type":"string","pattern":"^[a-z]+-[0-9]{2,3}$"}`,
		valid: []string{`"ab-12"`, `"x-999"`}, invalid: []string{`"AB-12"`, `"ab-1"`, `"ab-1234"`, `"ab12"`, `"-12"`}},
	{name: "pattern anywhere", schema: `{"type":"string","pattern":"cat"}`,
		valid: []string{`"cat"`, `"concatenate"`, `"a cat!"`, `"\ncat"`}, invalid: []string{`"dog"`, `"ca t"`, `""`}},
	{name: "pattern groups", schema: `{"type":"string","pattern":"^(foo|ba[rz])+(?:\\.\\d{1,2})?$"}`,
		valid: []string{`"foo"`, `"barbaz"`, `"foobar.1"`, `"baz.42"`}, invalid: []string{`"fo"`, `"foo."`, `"foo.123"`, `"bay"`}},
	{name: "pattern escapes", schema: `{"type":"string","pattern":"^[\"\\\\/]+$"}`,
		valid: []string{`"\""`, `"\\\\"`, `"\"\\/"`}, invalid: []string{`""`, `"a"`}, unwritten: []string{`"\/"`}},
	{name: "pattern dot and negation", schema: `{"type":"string","pattern":"^a.c[^0-9]\\S$"}`,
		valid: []string{`"abcde"`, `"a c!x"`, `"aécxy"`}, invalid: []string{`"a\nc!x"`, `"abc1x"`, `"abcd "`, `"abcd"`}},
	{name: "pattern with leading lookaheads", schema: `{"type":"string","pattern":"^(?!\\.)(?!.*\\.\\.)[a-z.]+@x$"}`,
		valid: []string{`"a@x"`, `"a.b@x"`, `"ab.@x"`}, invalid: []string{`".a@x"`, `"a..b@x"`, `"a@y"`}, noValidator: true},
	{name: "two patterns", schema: `{"allOf":[{"type":"string","pattern":"^a"},{"pattern":"z$"}]}`,
		valid: []string{`"az"`, `"a\nz"`, `"abcz"`}, invalid: []string{`"a"`, `"z"`, `"za"`}},
	{name: "pattern with lengths", schema: `{"type":"string","pattern":"^[ab]*$","minLength":1,"maxLength":3}`,
		valid: []string{`"a"`, `"ab"`, `"bba"`}, invalid: []string{`""`, `"abab"`, `"abc"`}},
	{name: "pattern with minLength", schema: `{"type":"string","pattern":"x","minLength":3}`,
		valid: []string{`"abx"`, `"xxxx"`, `"x  "`}, invalid: []string{`"xx"`, `"abc"`}},
	{name: "date", schema: `{"type":"string","format":"date"}`,
		valid:   []string{`"2024-02-29"`, `"2023-12-31"`, `"2000-02-29"`, `"2023-04-30"`, `"1999-01-01"`},
		invalid: []string{`"2023-02-29"`, `"1900-02-29"`, `"2024-04-31"`, `"2024-13-01"`, `"2024-00-10"`, `"2024-01-00"`, `"2024-1-01"`}},
	{name: "time", schema: `{"type":"string","format":"time"}`,
		valid: []string{`"12:34:56Z"`, `"23:59:59+01:00"`, `"00:00:00.123-05:30"`}, invalid: []string{`"24:00:00Z"`, `"12:60:00Z"`, `"12:00:00"`}},
	{name: "date-time", schema: `{"type":"string","format":"date-time"}`,
		valid: []string{`"2024-02-29T12:00:00Z"`, `"2024-02-29T12:00:00.5Z"`}, invalid: []string{`"2023-02-29T12:00:00Z"`, `"2024-02-29 12:00:00Z"`},
		unwritten: []string{`"2024-02-29T12:00:00+01:00"`}},
	{name: "uuid", schema: `{"type":"string","format":"uuid"}`,
		valid: []string{`"123e4567-e89b-12d3-a456-426614174000"`}, invalid: []string{`"123e4567e89b12d3a456426614174000"`, `"123e4567-e89b-12d3-a456-42661417400"`},
		unwritten: []string{`"123E4567-E89B-12D3-A456-426614174000"`, `"123e4567-e89b-02d3-a456-426614174000"`, `"123e4567-e89b-12d3-c456-426614174000"`}},
	{name: "email", schema: `{"type":"string","format":"email"}`,
		valid: []string{`"ann@example.com"`, `"a.b.c@x-y.mail.org"`, `"Z9@q.io"`}, invalid: []string{`"ann"`, `"ann@"`, `".a@x.com"`, `"a..b@x.com"`},
		unwritten: []string{`"a+b@x.com"`, `"a@localhost"`}},
	{name: "hostname", schema: `{"type":"string","format":"hostname"}`,
		valid: []string{`"example.com"`, `"a-b.c"`, `"x"`}, invalid: []string{`"-a.com"`, `"a-.com"`, `"a..b"`, `"a_b"`}},
	{name: "ipv4", schema: `{"type":"string","format":"ipv4"}`,
		valid: []string{`"0.0.0.0"`, `"255.255.255.255"`, `"10.0.12.199"`}, invalid: []string{`"256.1.1.1"`, `"1.2.3"`, `"01.2.3.4"`, `"1.2.3.4.5"`}},
	{name: "format with pattern", schema: `{"type":"string","format":"uuid","pattern":"^([0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[1-8][0-9a-fA-F]{3}-[89abAB][0-9a-fA-F]{3}-[0-9a-fA-F]{12}|00000000-0000-0000-0000-000000000000)$"}`,
		valid: []string{`"123e4567-e89b-12d3-a456-426614174000"`}, invalid: []string{`"123e4567-e89b-02d3-a456-426614174000"`, `"x"`}},
	{name: "zod 4 email", schema: `{"type":"string","format":"email","pattern":"^(?!\\.)(?!.*\\.\\.)([A-Za-z0-9_'+\\-\\.]*)[A-Za-z0-9_+-]@([A-Za-z0-9][A-Za-z0-9\\-]*\\.)+[A-Za-z]{2,}$"}`,
		valid: []string{`"ann@example.com"`, `"a.b@c-d.io"`}, invalid: []string{`"ann@x"`, `".a@x.io"`, `"a..b@x.io"`}, unwritten: []string{`"a+b@x.io"`}, noValidator: true},
	{name: "format with lengths", schema: `{"type":"string","format":"email","maxLength":8}`,
		valid: []string{`"a@b.io"`, `"ab@cd.io"`}, invalid: []string{`"abc@cd.io"`}, unwritten: []string{`"a@b"`}},
	{name: "date with pattern", schema: `{"type":"string","format":"date","pattern":"^2024-"}`,
		valid: []string{`"2024-02-29"`, `"2024-12-01"`}, invalid: []string{`"2023-01-01"`, `"2024-02-30"`}},
	{name: "object", schema: `{"type":"object","properties":{"a":{"type":"integer"},"b":{"type":"string"},"c":{"type":"boolean"}},"required":["b"]}`,
		valid:     []string{`{"b":"x"}`, `{"a":1,"b":"x"}`, `{"a":1,"b":"x","c":true}`, `{"b":"x","c":false}`, `{ "a": 1, "b": "x" }`},
		invalid:   []string{`{}`, `{"a":1}`, `{"b":1}`, `{"a":"1","b":"x"}`, `[]`},
		unwritten: []string{`{"c":true,"b":"x"}`, `{"b":"x","d":1}`}},
	{name: "object all optional", schema: `{"type":"object","properties":{"a":{"type":"integer"},"b":{"type":"string"}},"additionalProperties":false}`,
		valid: []string{`{}`, `{"a":1}`, `{"b":"x"}`, `{"a":1,"b":"x"}`}, invalid: []string{`{"b":"x","d":1}`, `{"d":1}`, `{"a":1,}`, `{,"b":"x"}`}},
	{name: "additionalProperties schema", schema: `{"type":"object","additionalProperties":{"type":"integer","minimum":0}}`,
		valid: []string{`{}`, `{"x":1}`, `{"x":1,"y":2}`}, invalid: []string{`{"x":-1}`, `{"x":"s"}`, `{"x":1,"y":null}`}},
	{name: "additionalProperties false alone", schema: `{"type":"object","additionalProperties":false}`,
		valid: []string{`{}`}, invalid: []string{`{"x":1}`}},
	{name: "required without properties", schema: `{"type":"object","required":["id"]}`,
		valid: []string{`{"id":1}`, `{"id":"x"}`, `{"id":null}`}, invalid: []string{`{}`, `{"x":1}`}, unwritten: []string{`{"id":1,"x":2}`}},
	{name: "required beside additionalProperties", schema: `{"type":"object","required":["id"],"additionalProperties":{"type":"string"}}`,
		valid: []string{`{"id":"x"}`}, invalid: []string{`{"id":1}`, `{}`}},
	{name: "anyOf with siblings", schema: `{"type":"object","properties":{"a":{"type":"integer"},"b":{"type":"string"}},"anyOf":[{"required":["a"]},{"required":["b"]}]}`,
		valid: []string{`{"a":1}`, `{"b":"x"}`, `{"a":1,"b":"x"}`}, invalid: []string{`{}`, `{"a":"x"}`, `3`}},
	{name: "anyOf of types", schema: `{"anyOf":[{"type":"string","maxLength":2},{"type":"integer","minimum":5,"maximum":6}]}`,
		valid: []string{`"ab"`, `5`, `6`}, invalid: []string{`"abc"`, `4`, `null`}},
	{name: "oneOf by const", schema: `{"oneOf":[{"type":"object","properties":{"kind":{"const":"a"},"x":{"type":"integer"}},"required":["kind","x"]},{"type":"object","properties":{"kind":{"const":"b"},"y":{"type":"string"}},"required":["kind","y"]}]}`,
		valid: []string{`{"kind":"a","x":1}`, `{"kind":"b","y":"s"}`}, invalid: []string{`{"kind":"a","y":"s"}`, `{"kind":"c","x":1}`, `{"x":1}`}},
	{name: "anyOf with an empty branch", schema: `{"type":"object","anyOf":[{"type":"string"},{"properties":{"a":{"type":"integer","minimum":3,"maximum":1}}},{"required":["b"],"properties":{"b":{"const":1}}},false]}`,
		valid: []string{`{"b":1}`, `{}`}, invalid: []string{`"s"`, `{"a":2}`}, unwritten: []string{`{"b":2}`}},
	{name: "oneOf by type", schema: `{"oneOf":[{"type":"string"},{"type":"integer"}]}`,
		valid: []string{`"s"`, `1`}, invalid: []string{`1.5`, `null`}},
	{name: "enum mixed", schema: `{"enum":["a",1,null,true,{"x":[1]},[1,"b"]]}`,
		valid: []string{`"a"`, `1`, `null`, `true`, `{"x":[1]}`, `[1,"b"]`}, invalid: []string{`"b"`, `2`, `false`, `{"x":[2]}`, `[1]`}},
	{name: "enum typed", schema: `{"type":"string","enum":["a",1]}`,
		valid: []string{`"a"`}, invalid: []string{`1`, `"b"`}},
	{name: "const", schema: `{"const":{"k":"v"}}`,
		valid: []string{`{"k":"v"}`}, invalid: []string{`{"k":"w"}`, `{}`}},
	{name: "array", schema: `{"type":"array","items":{"type":"integer","minimum":1,"maximum":3},"minItems":1,"maxItems":3}`,
		valid: []string{`[1]`, `[1,2]`, `[3,2,1]`, `[ 1, 2 ]`}, invalid: []string{`[]`, `[1,2,3,1]`, `[0]`, `[4]`, `[1,]`}},
	{name: "tuple", schema: `{"type":"array","prefixItems":[{"type":"string"},{"type":"integer"}],"items":false,"minItems":1}`,
		valid: []string{`["a"]`, `["a",1]`}, invalid: []string{`[]`, `["a",1,2]`, `[1]`, `["a","b"]`}},
	{name: "tuple open", schema: `{"type":"array","prefixItems":[{"type":"string"}],"maxItems":3}`,
		valid: []string{`[]`, `["a"]`, `["a",1,null]`}, invalid: []string{`[1]`, `["a",1,2,3]`}},
	{name: "array of nothing", schema: `{"type":"array","prefixItems":[{"type":"null"}],"items":{"type":"integer","minimum":2,"maximum":1}}`,
		valid: []string{`[]`, `[null]`}, invalid: []string{`[null,1]`, `[1]`}},
	{name: "ref recursion", schema: `{"$defs":{"node":{"type":"object","properties":{"v":{"type":"integer"},"next":{"anyOf":[{"type":"null"},{"$ref":"#/$defs/node"}]}},"required":["v","next"]}},"$ref":"#/$defs/node"}`,
		valid: []string{`{"v":1,"next":null}`, `{"v":1,"next":{"v":2,"next":null}}`}, invalid: []string{`{"v":1}`, `{"v":1,"next":{"v":2}}`}},
	{name: "allOf", schema: `{"allOf":[{"type":"object","properties":{"a":{"type":"integer"}},"required":["a"]},{"properties":{"a":{"maximum":3}}}]}`,
		valid: []string{`{"a":3}`, `{"a":-1}`}, invalid: []string{`{"a":4}`, `{}`}},
	{name: "ref with siblings", schema: `{"$defs":{"n":{"type":"integer","minimum":0}},"$ref":"#/$defs/n","maximum":9}`,
		valid: []string{`0`, `9`}, invalid: []string{`10`, `-1`}},
	{name: "type list", schema: `{"type":["string","null"],"maxLength":1}`,
		valid: []string{`"a"`, `null`, `""`}, invalid: []string{`"ab"`, `1`}},
	{name: "no type, bounds", schema: `{"minimum":0,"maximum":1}`,
		valid: []string{`0`, `0.5`, `1`}, invalid: []string{`2`, `-1`}, unwritten: []string{`"x"`, `null`}},
	{name: "true", schema: `true`,
		valid: []string{`1`, `"x"`, `[1,{"a":null}]`, `{}`, `null`}, invalid: []string{`{`, "\"\xff\""}, never: []string{`"\ud800"`}},
	{name: "false property", schema: `{"type":"object","properties":{"a":false,"b":{"type":"null"}}}`,
		valid: []string{`{}`, `{"b":null}`}, invalid: []string{`{"a":1}`, `{"a":1,"b":null}`}},
	{name: "issue 26", schema: `{"type":"object","properties":{"age":{"type":"integer","minimum":0,"maximum":120},"score":{"type":"number","minimum":0,"maximum":1}},"required":["age","score"]}`,
		valid: []string{`{"age":30,"score":0.75}`, `{"age":120,"score":1}`}, invalid: []string{`{"age":77885585,"score":69}`, `{"age":-1,"score":0.5}`, `{"age":30,"score":1.5}`}},
}

// TestLanguage: for each schema, the grammar accepts exactly the valid
// texts in the form it writes, as llama.cpp's grammar engine decides over
// bytes, and the validator agrees with each case's sides.
func TestLanguage(t *testing.T) {
	e := newEngine(t)
	for _, tc := range languageCases {
		t.Run(tc.name, func(t *testing.T) {
			g, err := jsonschema.Grammar([]byte(tc.schema))
			require.NoError(t, err)
			m := e.load(t, g)
			v := validator(t, `{}`)
			if !tc.noValidator {
				v = validator(t, tc.schema)
			}
			for _, x := range tc.valid {
				assert.True(t, valid(v, x), "the validator rejects valid %s", x)
				assert.True(t, m.accepts(t, x), "the grammar rejects valid %s\n%s", x, g)
			}
			for _, x := range tc.invalid {
				assert.True(t, tc.noValidator || !valid(v, x), "the validator accepts invalid %q", x)
				assert.False(t, m.accepts(t, x), "the grammar accepts invalid %q\n%s", x, g)
			}
			for _, x := range tc.never {
				assert.False(t, m.accepts(t, x), "the grammar accepts %s", x)
			}
			for _, x := range tc.unwritten {
				assert.True(t, valid(v, x), "the validator rejects %s", x)
				assert.False(t, m.accepts(t, x), "the grammar accepts %s, outside its form", x)
			}
		})
	}
}

// TestFormatAutomata: a format beside a pattern or lengths goes through an
// automaton built from a regular expression instead of the format's
// grammar rule; both must accept the same texts.
func TestFormatAutomata(t *testing.T) {
	e := newEngine(t)
	for _, tc := range languageCases {
		if !strings.HasPrefix(tc.schema, `{"type":"string","format":`) || strings.Count(tc.schema, ",") != 1 {
			continue
		}
		schema := strings.TrimSuffix(tc.schema, "}") + `,"minLength":0}`
		t.Run(tc.name, func(t *testing.T) {
			g, err := jsonschema.Grammar([]byte(schema))
			require.NoError(t, err)
			m := e.load(t, g)
			for _, x := range tc.valid {
				assert.True(t, m.accepts(t, x), "%s: rejects %s", schema, x)
			}
			for _, x := range append(tc.invalid, tc.unwritten...) {
				assert.False(t, m.accepts(t, x), "%s: accepts %s", schema, x)
			}
		})
	}
}

// TestNumberRanges compares the grammar with the validator on many
// numbers around each schema's bounds: in the form the grammar writes
// (no exponent, no "-0", at most 15 digits), accepted exactly when valid.
func TestNumberRanges(t *testing.T) {
	e := newEngine(t)
	schemas := []string{
		`{"type":"integer","minimum":0,"maximum":120}`,
		`{"type":"integer","minimum":-37,"exclusiveMaximum":215}`,
		`{"type":"integer","exclusiveMinimum":-1000,"maximum":-999}`,
		`{"type":"integer","minimum":95,"maximum":1005}`,
		`{"type":"integer","maximum":42}`,
		`{"type":"number","minimum":0,"maximum":1}`,
		`{"type":"number","minimum":-2.5,"exclusiveMaximum":3.75}`,
		`{"type":"number","exclusiveMinimum":0.125,"maximum":0.25}`,
		`{"type":"number","minimum":-10.05,"maximum":-9.95}`,
		`{"type":"number","minimum":19.99}`,
		`{"type":"number","exclusiveMaximum":-0.5}`,
		`{"type":"number","minimum":99.5,"maximum":100.5}`,
	}
	rng := rand.New(rand.NewPCG(1, 2))
	for _, schema := range schemas {
		g, err := jsonschema.Grammar([]byte(schema))
		require.NoError(t, err, schema)
		m := e.load(t, g)
		v := validator(t, schema)
		seen := map[string]bool{}
		check := func(x string) {
			if seen[x] {
				return
			}
			seen[x] = true
			want := valid(v, x)
			if m.accepts(t, x) != want {
				t.Errorf("%s: %s: grammar %v, validator %v\n%s", schema, x, !want, want, g)
			}
		}
		for i := -1100; i <= 1100; i++ {
			check(strconv.Itoa(i))
		}
		if strings.Contains(schema, "integer") {
			continue // decimals like 10.0 are valid integers the grammar does not write
		}
		for range 1500 {
			// Decimals near the interesting values, with 1 to 6 fraction digits.
			base := []float64{0, 0.125, 0.25, 0.5, 1, 2.5, 3.75, 9.95, 10.05, 19.99, 99.5, 100.5}[rng.IntN(12)]
			if rng.IntN(2) == 0 {
				base = -base
			}
			x := base + (rng.Float64()-0.5)*0.2
			s := strconv.FormatFloat(x, 'f', 1+rng.IntN(6), 64)
			if s == "-0" || (len(s) > 1 && s[0] == '-' && allZeroDigits(s[1:])) {
				continue // "-0.00" is outside the grammar's form
			}
			check(s)
		}
	}
}

func allZeroDigits(s string) bool {
	for _, c := range s {
		if c != '0' && c != '.' {
			return false
		}
	}
	return true
}

// TestRefused: what cannot be expressed exactly is an *Error naming the
// keyword, never a grammar.
func TestRefused(t *testing.T) {
	cases := map[string]string{
		`{"type":"string","pattern":"a(?=a)"}`:                                                  "pattern",
		`{"type":"string","pattern":"(a)\\1"}`:                                                  "pattern",
		`{"type":"string","pattern":"\\bword"}`:                                                 "pattern",
		`{"type":"string","pattern":"\\p{L}"}`:                                                  "pattern",
		`{"type":"string","pattern":"[]"}`:                                                      "pattern",
		`{"type":"integer","multipleOf":3}`:                                                     "multipleOf",
		`{"type":"array","uniqueItems":true}`:                                                   "uniqueItems",
		`{"not":{"type":"null"}}`:                                                               "not",
		`{"if":{"type":"null"},"then":false}`:                                                   "if",
		`{"type":"string","format":"uri"}`:                                                      "format",
		`{"oneOf":[{"type":"integer"},{"type":"number"}]}`:                                      "oneOf",
		`{"type":"number","minimum":0.12345678901234567}`:                                       "minimum",
		`{"type":"integer","minimum":1e20}`:                                                     "minimum",
		`{"type":"integer","minimum":5,"maximum":3}`:                                            "maximum",
		`{"type":"number","exclusiveMinimum":1,"maximum":1}`:                                    "maximum",
		`{"$ref":"http://example.com/s.json"}`:                                                  "$ref",
		`{"$ref":"#/nope"}`:                                                                     "$ref",
		`{"type":"string","minLength":5000}`:                                                    "minLength",
		`{"type":"array","maxItems":1,"minItems":2}`:                                            "maxItems",
		`{"type":"array","contains":{"type":"null"}}`:                                           "contains",
		`{"type":"object","properties":{"a":{}},"required":["b"],"additionalProperties":false}`: "required",
		`{"type":"object","patternProperties":{"^x":{}}}`:                                       "patternProperties",
		`{"type":"object","minProperties":1}`:                                                   "minProperties",
		`{"enum":[]}`:                                                                           "enum",
		`{"type":"string","enum":[1,2]}`:                                                        "enum",
		`{"anyOf":"x"}`:                                                                         "anyOf",
		`{"type":"banana"}`:                                                                     "type",
		`{"type":7}`:                                                                            "type",
		`{"type":"string","pattern":"^a$","format":"date"}`:                                     "pattern",
		`{"type":"string","format":"date-time","maxLength":12}`:                                 "format",
		`{"allOf":[{"type":"string"},{"type":"integer"}]}`:                                      "type",
		`{"type":"string","pattern":"^x{2000}$"}`:                                               "pattern",
		`{"type":"string","pattern":"^a$","maxLength":0}`:                                       "pattern",
	}
	for src, kw := range cases {
		_, err := jsonschema.Grammar([]byte(src))
		var se *jsonschema.Error
		if assert.True(t, errors.As(err, &se), "%s: %v", src, err) {
			assert.Equal(t, kw, se.Keyword, "%s: %v", src, err)
			assert.ErrorIs(t, err, jsonschema.ErrSchema)
			assert.Contains(t, err.Error(), fmt.Sprintf("%q", kw))
		}
	}
	for _, src := range []string{`[]`, `{`, `{} {}`, `7`, "{\"a\":\"\xff\"}", `false`} {
		_, err := jsonschema.Grammar([]byte(src))
		assert.ErrorIs(t, err, jsonschema.ErrSchema, src)
	}
}
