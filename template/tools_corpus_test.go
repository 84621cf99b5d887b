package template

import (
	"compress/gzip"
	"encoding/json"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"

	"github.com/stretchr/testify/require"
)

// toolsRan and toolsPassed count the tool-conversation cases.
var toolsRan, toolsPassed atomic.Int64

// TestToolTemplates renders the tool conversations of
// testdata/jinja2-tools.json.gz (written by testdata/tools_reference.py
// with Python's jinja2) through the templates of the families that take
// tools: a tools list, a picture in the conversation, assistant tool_calls
// with arguments as objects and as strings, tool results, parallel calls.
// Template files are relative to testdata (chat-templates/templates for
// the corpus families, tool-templates for the others).
func TestToolTemplates(t *testing.T) {
	f, err := os.Open(filepath.Join("testdata", "jinja2-tools.json.gz"))
	require.NoError(t, err)
	defer f.Close()
	zr, err := gzip.NewReader(f)
	require.NoError(t, err)
	var cases []corpusCase
	require.NoError(t, json.NewDecoder(zr).Decode(&cases))
	require.NotEmpty(t, cases)
	passed := runCases(t, "testdata", cases, &toolsRan, &toolsPassed)
	t.Logf("tool conversations: %d of %d cases passed", passed, len(cases))
}
