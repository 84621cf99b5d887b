package openai_test

import (
	"bytes"
	"encoding/json"
	"testing"

	"github.com/santhosh-tekuri/jsonschema/v6"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/vlm-go/vlm/llama"
	"github.com/vlm-go/vlm/openai"
	"github.com/vlm-go/vlm/pipeline"
	"github.com/vlm-go/vlm/sampler"
)

func compileSchema(t testing.TB, schema map[string]any) *jsonschema.Schema {
	t.Helper()
	data, err := json.Marshal(schema)
	require.NoError(t, err)
	doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(data))
	require.NoError(t, err)
	c := jsonschema.NewCompiler()
	c.AssertFormat()
	require.NoError(t, c.AddResource("schema.json", doc))
	s, err := c.Compile("schema.json")
	require.NoError(t, err)
	return s
}

// TestSchemaGrammarsLoad: every supported schema kind converts into a
// grammar llama.cpp's parser accepts (a sampler is built with it), and
// unsupported ones are refused with ErrSchema.
func TestSchemaGrammarsLoad(t *testing.T) {
	p := loadModel(t)
	good := []string{
		`{}`,
		`{"type":"object"}`,
		`{"type":"string","minLength":2,"maxLength":5}`,
		`{"type":["string","null"]}`,
		`{"type":"array","items":{"type":"integer"},"minItems":2,"maxItems":4}`,
		`{"type":"array","prefixItems":[{"type":"string"},{"type":"number"}]}`,
		`{"enum":["a",1,null,true,{"x":[1]}]}`,
		`{"const":{"k":"v"}}`,
		`{"type":"object","properties":{"a":{"type":"string"},"b":{"type":"integer"}}}`,
		`{"type":"object","properties":{"a":{"type":"string"},"b":{"type":"integer"}},"required":["b"]}`,
		`{"anyOf":[{"type":"string","format":"date-time"},{"type":"string","format":"time"},{"type":"string","format":"uuid"}]}`,
		`{"$defs":{"node":{"type":"object","properties":{"v":{"type":"integer"},"next":{"anyOf":[{"type":"null"},{"$ref":"#/$defs/node"}]}},"required":["v","next"]}},"$ref":"#/$defs/node"}`,
		`{"definitions":{"a":{"type":"boolean"}},"type":"object","properties":{"x":{"$ref":"#/definitions/a"}},"required":["x"]}`,
		`{"allOf":[{"type":"number"}]}`,
		`{"type":"object","properties":{"we\"ird key\n":{"type":"null"}},"required":["we\"ird key\n"]}`,
	}
	for _, src := range good {
		schema, err := openai.DecodeSchema([]byte(src))
		require.NoError(t, err, src)
		g, err := openai.SchemaGrammar(schema)
		require.NoError(t, err, src)
		smp, err := sampler.New(p, sampler.Config{Grammar: g})
		require.NoError(t, err, "%s\n%s", src, g)
		smp.Close()
	}
	bad := []string{`{"type":"banana"}`, `{"type":"string","pattern":"x"}`, `{"$ref":"http://x/y"}`, `{"$ref":"#/nope"}`,
		`{"enum":[]}`, `{"anyOf":"x"}`, `{"type":"object","properties":{"a":{}},"required":["b"]}`, `{"type":"array","maxItems":1,"minItems":2}`,
		`{"not":{}}`, `[]`, `{"type":7}`}
	for _, src := range bad {
		schema, err := openai.DecodeSchema([]byte(src))
		if err == nil {
			_, err = openai.SchemaGrammar(schema)
		}
		assert.ErrorIs(t, err, openai.ErrSchema, src)
	}
}

func loadModel(t testing.TB) *llama.Model {
	t.Helper()
	s := newServer(t, pipeline.Options{}, openai.Options{})
	return s.p.Model()
}
