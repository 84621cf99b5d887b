package jsonschema_test

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/vlm-go/vlm/llama"
	"github.com/vlm-go/vlm/sampler"
	"github.com/vlm-go/vlm/sampler/jsonschema"
)

// sampleSchemas cover every kind the converter supports; each bounds its
// strings and arrays so that an answer ends within the token budget.
var sampleSchemas = []string{
	// issue 26's schema
	`{"type":"object","properties":{"age":{"type":"integer","minimum":0,"maximum":120},"score":{"type":"number","minimum":0,"maximum":1}},"required":["age","score"]}`,
	// LangChain's default structured output: a name with maxLength 20
	`{"type":"object","properties":{"name":{"type":"string","maxLength":20},"tags":{"type":"array","items":{"type":"string","minLength":1,"maxLength":6},"minItems":1,"maxItems":3}},"required":["name","tags"],"additionalProperties":false}`,
	`{"type":"object","properties":{
		"n":{"type":"integer","exclusiveMinimum":-50,"exclusiveMaximum":50},
		"x":{"type":"number","minimum":-2.5,"maximum":3.75},
		"code":{"type":"string","pattern":"^[A-Z]{2}-\\d{3}$"},
		"word":{"type":"string","pattern":"cat","maxLength":8},
		"day":{"type":"string","format":"date"},
		"at":{"type":"string","format":"date-time"},
		"id":{"type":"string","format":"uuid"},

		"kind":{"enum":["a",1,null,true,{"x":[1]}]},
		"fixed":{"const":"v1"},
		"ok":{"type":["boolean","null"]}},
	 "required":["n","x","code","word","day","at","id","kind","fixed","ok"]}`,
	`{"type":"object","properties":{"zod4mail":{"type":"string","format":"email","pattern":"^(?!\\.)(?!.*\\.\\.)([A-Za-z0-9_'+\\-\\.]*)[A-Za-z0-9_+-]@([A-Za-z0-9][A-Za-z0-9\\-]*\\.)+[A-Za-z]{2,}$"}},"required":["zod4mail"]}`,
	`{"type":"object","properties":{"mail":{"type":"string","format":"email"},"host":{"type":"string","format":"hostname"},"ip":{"type":"string","format":"ipv4"}},"required":["mail","host","ip"]}`,
	`{"type":"object","properties":{"a":{"type":"integer","minimum":0,"maximum":9},"b":{"type":"string","maxLength":4}},"anyOf":[{"required":["a"]},{"required":["b"]}],"additionalProperties":false}`,
	`{"type":"object","additionalProperties":{"type":"integer","minimum":1,"maximum":3},"required":["id"]}`,
	`{"oneOf":[{"type":"object","properties":{"kind":{"const":"circle"},"r":{"type":"number","exclusiveMinimum":0,"maximum":10}},"required":["kind","r"],"additionalProperties":false},
	           {"type":"object","properties":{"kind":{"const":"square"},"side":{"type":"integer","minimum":1,"maximum":5}},"required":["kind","side"],"additionalProperties":false}]}`,
	`{"$defs":{"node":{"type":"object","properties":{"v":{"type":"integer","minimum":0,"maximum":99},"next":{"anyOf":[{"type":"null"},{"$ref":"#/$defs/node"}]}},"required":["v","next"],"additionalProperties":false}},"$ref":"#/$defs/node"}`,
	`{"type":"array","prefixItems":[{"type":"string","maxLength":3},{"type":"integer","minimum":10,"maximum":20}],"items":false,"minItems":1}`,
	`{"type":"string","minLength":2,"maxLength":12}`,
}

// TestSampledAnswersValidate: answers sampled from the test model under each
// schema's grammar, across temperatures and seeds, are valid UTF-8, parse,
// and validate against the schema (santhosh-tekuri/jsonschema, formats
// asserted). A chain of nodes may nest until the budget runs out; every
// other answer must end.
func TestSampledAnswersValidate(t *testing.T) {
	m := loadModel(t)
	x, err := m.NewContext(llama.ContextOptions{ContextSize: 1024, Threads: 1})
	require.NoError(t, err)
	t.Cleanup(func() { x.Close() })
	prompt, err := m.Vocab().Tokenize("Give me a record as JSON.", true, false)
	require.NoError(t, err)
	for i, schema := range sampleSchemas {
		g, err := jsonschema.Grammar([]byte(schema))
		require.NoError(t, err, schema)
		check := func(string) bool { return true }
		if strings.Contains(schema, "(?!") {
			// Go's regexp (the validator's) has no lookahead: validate
			// without the two lookaheads and check what they say by hand.
			schema = strings.Replace(schema, `(?!\\.)(?!.*\\.\\.)`, "", 1)
			check = func(out string) bool {
				var v map[string]string
				if json.Unmarshal([]byte(out), &v) != nil {
					return false
				}
				for _, s := range v {
					if strings.HasPrefix(s, ".") || strings.Contains(s, "..") {
						return false
					}
				}
				return true
			}
		}
		v := validator(t, schema)
		for _, run := range []struct {
			temp float32
			seed uint32
		}{{0, 1}, {0.8, 1}, {0.8, 2}, {0.8, 3}, {1.5, 1}, {1.5, 2}, {1.5, 3}} {
			s, err := sampler.New(m, sampler.Config{Temperature: run.temp, Seed: run.seed, Grammar: g})
			require.NoError(t, err)
			out, done := generate(t, x, s, m, prompt, 500)
			s.Close()
			where := fmt.Sprintf("schema %d, temperature %v, seed %d: %q", i, run.temp, run.seed, out)
			if !done {
				assert.Contains(t, schema, "$ref", "%s: no end within the budget", where)
				continue
			}
			require.True(t, utf8.ValidString(out), where)
			assert.True(t, valid(v, out) && check(out), where)
		}
	}
}

// generate samples up to n tokens after prompt; done when the model ended.
func generate(t *testing.T, x *llama.Context, s *sampler.Sampler, m *llama.Model, prompt []llama.Token, n int) (string, bool) {
	t.Helper()
	require.NoError(t, x.ClearMemory())
	b, err := x.NewBatch(max(len(prompt), 1))
	require.NoError(t, err)
	defer b.Close()
	require.NoError(t, b.AddSequence(prompt, 0, 0, true))
	require.NoError(t, x.Decode(context.Background(), b))
	pos := int32(len(prompt))
	var out []byte
	for range n {
		tok, err := s.Sample(x, -1)
		require.NoError(t, err)
		if m.Vocab().IsEOG(tok) {
			return string(out), true
		}
		p, err := m.Vocab().Piece(tok, false)
		require.NoError(t, err)
		out = append(out, p...)
		b.Clear()
		require.NoError(t, b.Add(tok, pos, true))
		pos++
		require.NoError(t, x.Decode(context.Background(), b))
	}
	return string(out), false
}
