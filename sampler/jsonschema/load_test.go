package jsonschema_test

import (
	"context"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/vlm-go/vlm/gguf"
	"github.com/vlm-go/vlm/internal/testmodel"
	"github.com/vlm-go/vlm/llama"
	"github.com/vlm-go/vlm/sampler"
	"github.com/vlm-go/vlm/sampler/jsonschema"
)

func loadModel(t testing.TB) *llama.Model {
	t.Helper()
	path, _ := testmodel.TinyPair(t, testmodel.ProjectorIdefics3, gguf.TypeF16)
	m, err := llama.Load(context.Background(), path, llama.LoadOptions{NoGPU: true})
	require.NoError(t, err)
	t.Cleanup(func() { m.Close() })
	return m
}

// TestGrammarsLoad: every supported schema kind converts into a grammar
// llama.cpp's parser accepts (a sampler is built with it), and unsupported
// ones are refused with ErrSchema.
func TestGrammarsLoad(t *testing.T) {
	m := loadModel(t)
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
		g, err := jsonschema.Grammar([]byte(src))
		require.NoError(t, err, src)
		smp, err := sampler.New(m, sampler.Config{Grammar: g})
		require.NoError(t, err, "%s\n%s", src, g)
		smp.Close()
	}
	smp, err := sampler.New(m, sampler.Config{Grammar: jsonschema.ObjectGrammar()})
	require.NoError(t, err)
	smp.Close()
	bad := []string{`{"type":"banana"}`, `{"type":"string","pattern":"(?=x)"}`, `{"$ref":"http://x/y"}`, `{"$ref":"#/nope"}`,
		`{"enum":[]}`, `{"anyOf":"x"}`, `{"type":"object","properties":{"a":{}},"required":["b"],"additionalProperties":false}`, `{"type":"array","maxItems":1,"minItems":2}`,
		`{"not":{}}`, `[]`, `{"type":7}`, `{`, `{} {}`}
	for _, src := range bad {
		_, err := jsonschema.Grammar([]byte(src))
		assert.ErrorIs(t, err, jsonschema.ErrSchema, src)
	}
}
