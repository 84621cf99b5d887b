package jsonschema

import (
	"errors"
	"fmt"
	"sort"
	"strings"
	"sync"
)

// ErrSchema: the schema is not a JSON schema, or uses a keyword (or a
// combination) the converter cannot express exactly. Errors wrapping it are
// *Error values naming the keyword and where it is.
var ErrSchema = errors.New("jsonschema: schema not supported")

// Error is why a schema was refused: Keyword (e.g. "pattern") at Path (a
// JSON pointer into the schema, "" for the root), and Reason.
type Error struct {
	// Path is the JSON pointer of the subschema ("" is the root).
	Path string
	// Keyword is the keyword refused ("" when the schema as a whole is
	// not JSON or not a schema).
	Keyword string
	// Reason says what is wrong or unsupported.
	Reason string

	none bool // the schema is fine but allows no value here (an anyOf branch that can be left out)
}

// Error implements error.
func (e *Error) Error() string {
	where := e.Path
	if where == "" {
		where = "/"
	}
	if e.Keyword == "" {
		return fmt.Sprintf("jsonschema: %s (at %s)", e.Reason, where)
	}
	return fmt.Sprintf("jsonschema: %q: %s (at %s)", e.Keyword, e.Reason, where)
}

// Unwrap returns ErrSchema.
func (e *Error) Unwrap() error { return ErrSchema }

// Grammar returns a GBNF grammar, start rule "root", for one JSON value the
// schema accepts, optionally followed by whitespace.
func Grammar(schema []byte) (string, error) {
	b := NewBuilder()
	name, err := b.Schema("root-value", schema)
	if err != nil {
		return "", err
	}
	return b.Grammar(name), nil
}

var objectGrammar = sync.OnceValue(func() string {
	g, err := Grammar([]byte(`{"type":"object"}`))
	if err != nil {
		panic(err)
	}
	return g
})

// ObjectGrammar returns the grammar for any JSON object (OpenAI's
// response_format {"type": "json_object"}).
func ObjectGrammar() string { return objectGrammar() }

// Builder collects the rules of one GBNF grammar made of several schemas'
// values and rules of the caller's own. The zero value is not ready: use
// NewBuilder. A Builder is not safe for concurrent use.
type Builder struct {
	rules map[string]string
	n     int
}

// NewBuilder returns an empty Builder.
func NewBuilder() *Builder { return &Builder{rules: map[string]string{}} }

// Schema adds the rules for one JSON value that schema accepts, followed by
// optional whitespace, and returns the name of the rule that matches it
// (derived from hint, made unique). $ref within schema resolves against
// schema itself.
func (b *Builder) Schema(hint string, schema []byte) (string, error) {
	root, err := decodeSchema(schema)
	if err != nil {
		return "", err
	}
	c := &converter{b: b, root: root, refs: map[string]string{}}
	body, err := c.visit(root, "", hint)
	if err != nil {
		return "", err
	}
	return b.Rule(hint, body), nil
}

// Rule adds a rule with the given GBNF body under a name derived from hint
// (letters, digits and '-'; made unique) and returns the name.
func (b *Builder) Rule(hint, body string) string {
	name := b.newName(hint)
	b.rules[name] = body
	return name
}

// Space returns the name of the whitespace rule that values end with.
func (b *Builder) Space() string { return b.use("space") }

// Grammar returns the grammar whose start rule "root" is body (a GBNF
// expression, e.g. a name Schema or Rule returned) with every rule added.
func (b *Builder) Grammar(body string) string {
	names := make([]string, 0, len(b.rules))
	for n := range b.rules {
		names = append(names, n)
	}
	sort.Strings(names)
	var s strings.Builder
	s.WriteString("root ::= " + body + "\n")
	for _, n := range names {
		s.WriteString(n + " ::= " + b.rules[n] + "\n")
	}
	return s.String()
}

// Quote returns s as a GBNF string literal matching exactly its bytes.
func Quote(s string) string { return gbnfString(s) }
