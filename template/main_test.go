package template

import (
	"fmt"
	"os"
	"testing"
)

// TestMain prints how many corpus cases ran, so the count shows even
// without -v.
func TestMain(m *testing.M) {
	code := m.Run()
	if n := corpusRan.Load(); n > 0 {
		fmt.Printf("template: chat-template corpus: %d/%d cases passed\n", corpusPassed.Load(), n)
	} else if dir, why := findCorpus(); dir == "" {
		fmt.Printf("template: chat-template corpus not run: %s\n", why)
	}
	if n := diffRan.Load(); n > 0 {
		fmt.Printf("template: jinja2 differential: %d/%d cases passed\n", diffPassed.Load(), n)
	}
	os.Exit(code)
}
