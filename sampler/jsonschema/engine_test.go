package jsonschema_test

import (
	"bytes"
	"fmt"
	"testing"
	"unicode/utf8"

	sj "github.com/santhosh-tekuri/jsonschema/v6"
	"github.com/stretchr/testify/require"

	"github.com/vlm-go/vlm/llama"
	"github.com/vlm-go/vlm/sampler"
)

// engine drives llama.cpp's grammar sampler over bytes: the tiny test
// model's vocabulary has a byte-fallback token for every byte value, so a
// text is fed one byte token at a time and accepted when every byte is
// allowed and the end of generation is allowed after the last one.
type engine struct {
	m     *llama.Model
	bytes [256]llama.Token
	eos   llama.Token
}

func newEngine(t testing.TB) *engine {
	t.Helper()
	m := loadModel(t)
	e := &engine{m: m, eos: m.Vocab().EOS()}
	found := 0
	for id := range m.Vocab().Size() {
		text, err := m.Vocab().Text(llama.Token(id))
		require.NoError(t, err)
		var b byte
		if n, err := fmt.Sscanf(text, "<0x%02X>", &b); err == nil && n == 1 && len(text) == 6 {
			e.bytes[b] = llama.Token(id)
			found++
		}
	}
	require.Equal(t, 256, found, "byte tokens in the test vocabulary")
	return e
}

// matcher is one grammar loaded into a sampler, reset between texts.
type matcher struct {
	e *engine
	s *sampler.Sampler
	g string
}

func (e *engine) load(t testing.TB, g string) *matcher {
	t.Helper()
	s, err := sampler.New(e.m, sampler.Config{Grammar: g})
	require.NoError(t, err, "grammar:\n%s", g)
	t.Cleanup(func() { s.Close() })
	return &matcher{e, s, g}
}

// accepts reports whether the grammar accepts exactly the bytes of text.
func (m *matcher) accepts(t testing.TB, text string) bool {
	t.Helper()
	require.NoError(t, m.s.Reset())
	for i := range len(text) {
		if m.s.Accept(m.e.bytes[text[i]]) != nil {
			return false
		}
	}
	return m.s.Accept(m.e.eos) == nil
}

// validator compiles schema with a real JSON Schema validator (format
// assertions on).
func validator(t testing.TB, schema string) *sj.Schema {
	t.Helper()
	doc, err := sj.UnmarshalJSON(bytes.NewReader([]byte(schema)))
	require.NoError(t, err, schema)
	c := sj.NewCompiler()
	c.AssertFormat()
	require.NoError(t, c.AddResource("schema.json", doc), schema)
	s, err := c.Compile("schema.json")
	require.NoError(t, err, schema)
	return s
}

// valid reports whether text is JSON that the validator accepts.
func valid(s *sj.Schema, text string) bool {
	if !utf8.ValidString(text) { // Go's JSON decoder would read invalid bytes as U+FFFD
		return false
	}
	v, err := sj.UnmarshalJSON(bytes.NewReader([]byte(text)))
	if err != nil {
		return false
	}
	return s.Validate(v) == nil
}
