package jsonschema_test

import (
	"strings"
	"testing"

	"github.com/vlm-go/vlm/sampler/jsonschema"
)

// FuzzGrammar: any input either converts or is refused with ErrSchema;
// nothing panics or runs away.
func FuzzGrammar(f *testing.F) {
	for _, tc := range languageCases {
		f.Add(tc.schema)
	}
	f.Add(`{"type":"string","pattern":"^(a|b)*c{2,5}[^x-z]\\d?$"}`)
	f.Add(`{"allOf":[{"$ref":"#"}],"type":"object"}`)
	f.Fuzz(func(t *testing.T, src string) {
		g, err := jsonschema.Grammar([]byte(src))
		if err != nil {
			if !strings.Contains(err.Error(), "jsonschema:") {
				t.Fatalf("%q: error %v does not come from the package", src, err)
			}
			return
		}
		if !strings.HasPrefix(g, "root ::= ") {
			t.Fatalf("%q: grammar %q", src, g)
		}
	})
}
