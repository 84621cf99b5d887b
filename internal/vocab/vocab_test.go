// Package vocab_test keeps the README's "One vocabulary" table true: the
// same knob has one name and one meaning in every package. It reads the
// module's Go files (no type checking) and the packages' sentinels.
package vocab_test

import (
	"errors"
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/vlm-go/vlm"
	"github.com/vlm-go/vlm/engine"
	"github.com/vlm-go/vlm/llama"
	"github.com/vlm-go/vlm/mtmd"
	"github.com/vlm-go/vlm/pipeline"
	"github.com/vlm-go/vlm/sampler"
	"github.com/vlm-go/vlm/template"
)

// retired maps the names the table retired to the name that replaced them.
// The module root keeps llama.cpp's own names (ContextParams.NCtx is
// n_ctx): it is the C API, 1:1; every other package uses the table's.
var retired = map[string]string{
	"NCtx":         "ContextSize",
	"NBatch":       "BatchSize",
	"NUbatch":      "UBatchSize",
	"KVSize":       "ContextSize",
	"Parallel":     "Sequences",
	"UseGPU":       "NoGPU",
	"MaxPositions": "SequenceLength",
	"EncodeNanos":  "EncodeTime",
	"DefaultNCtx":  "DefaultContextSize",
	"RemoveTokens": "RemovePositions",
}

// fieldsOnly are retired as option fields only: toolcall's Format.Parallel
// (several tool calls in one answer) is another concept.
var fieldsOnly = map[string]bool{"Parallel": true}

// goFiles parses every non-test Go file of the module outside the root,
// internal/, cmd/ and examples/ (programs and generated code have no API).
func goFiles(t *testing.T) map[string]*ast.File {
	t.Helper()
	root, err := filepath.Abs("../..")
	require.NoError(t, err)
	files := map[string]*ast.File{}
	fset := token.NewFileSet()
	err = filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, path)
		if d.IsDir() {
			switch {
			case rel == ".":
				return nil
			case strings.HasPrefix(rel, "internal"), strings.HasPrefix(rel, "cmd"), strings.HasPrefix(rel, "examples"),
				strings.HasPrefix(rel, "third_party"), strings.HasPrefix(rel, "vendor"), strings.HasPrefix(d.Name(), "."),
				d.Name() == "testdata", d.Name() == "node_modules":
				return filepath.SkipDir
			}
			return nil
		}
		if filepath.Dir(rel) == "." || !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
			return nil
		}
		f, err := parser.ParseFile(fset, path, nil, parser.SkipObjectResolution|parser.ParseComments)
		if err != nil {
			return err
		}
		files[rel] = f
		return nil
	})
	require.NoError(t, err)
	require.Greater(t, len(files), 20, "found too few files: is the walk wrong?")
	return files
}

// TestRetiredNamesAreGone: no exported type, field, function, method or
// constant outside the root uses a name the table retired.
func TestRetiredNamesAreGone(t *testing.T) {
	var found []string
	for rel, f := range goFiles(t) {
		ast.Inspect(f, func(n ast.Node) bool {
			var names []*ast.Ident
			field := false
			switch n := n.(type) {
			case *ast.Field:
				names, field = n.Names, true
			case *ast.FuncDecl:
				names = []*ast.Ident{n.Name}
			case *ast.ValueSpec:
				names = n.Names
			case *ast.TypeSpec:
				names = []*ast.Ident{n.Name}
			}
			for _, id := range names {
				if repl, ok := retired[id.Name]; ok && id.IsExported() && (field || !fieldsOnly[id.Name]) {
					found = append(found, rel+": "+id.Name+" (now "+repl+")")
				}
			}
			return true
		})
	}
	assert.Empty(t, found)
}

// TestThreadsZeroMeansDefault: every exported Threads field says that 0
// means vlm.DefaultThreads().
func TestThreadsZeroMeansDefault(t *testing.T) {
	checked := 0
	for rel, f := range goFiles(t) {
		ast.Inspect(f, func(n ast.Node) bool {
			fl, ok := n.(*ast.Field)
			if !ok {
				return true
			}
			for _, id := range fl.Names {
				if id.Name != "Threads" {
					continue
				}
				checked++
				doc := fl.Doc.Text() + fl.Comment.Text()
				assert.Contains(t, doc, "DefaultThreads", "%s: the doc of Threads must say 0 means vlm.DefaultThreads()", rel)
			}
			return true
		})
	}
	assert.GreaterOrEqual(t, checked, 4, "llama, mtmd, engine and pipeline have a Threads option")
}

// TestInvalidArgumentIsOneKind: every package's "bad argument" sentinel
// matches vlm.ErrInvalidArgument, and its own.
func TestInvalidArgumentIsOneKind(t *testing.T) {
	for name, err := range map[string]error{
		"engine.ErrInvalidRequest":   engine.ErrInvalidRequest,
		"engine.ErrInvalidOptions":   engine.ErrInvalidOptions,
		"pipeline.ErrInvalidInput":   pipeline.ErrInvalidInput,
		"pipeline.ErrInvalidOptions": pipeline.ErrInvalidOptions,
		"sampler.ErrInvalidConfig":   sampler.ErrInvalidConfig,
		"template.ErrInvalidMessage": template.ErrInvalidMessage,
		"mtmd.ErrInvalidImage":       mtmd.ErrInvalidImage,
	} {
		assert.ErrorIs(t, err, vlm.ErrInvalidArgument, name)
		assert.NotEqual(t, vlm.ErrInvalidArgument.Error(), err.Error(), "%s keeps its own message", name)
		assert.False(t, errors.Is(err, vlm.ErrClosed), name)
	}
	// The packages beside the root re-export the kind itself.
	assert.Equal(t, vlm.ErrInvalidArgument, mtmd.ErrInvalidArgument)
	assert.Equal(t, vlm.ErrInvalidArgument, llama.ErrInvalidArgument)
}

// TestEveryInvalidSentinelIsListed: an exported ErrInvalid… variable outside
// the root is either of the invalid-argument kind (errkind.New with it, or
// an alias of vlm.ErrInvalidArgument) or a file that cannot be loaded
// (its own kind: a bad file is not a bad argument).
func TestEveryInvalidSentinelIsListed(t *testing.T) {
	files := map[string]bool{"ErrInvalid": true, "ErrInvalidModel": true, "ErrInvalidProjector": true}
	for rel, f := range goFiles(t) {
		for _, d := range f.Decls {
			g, ok := d.(*ast.GenDecl)
			if !ok || g.Tok != token.VAR {
				continue
			}
			for _, s := range g.Specs {
				vs := s.(*ast.ValueSpec)
				for i, id := range vs.Names {
					if !strings.HasPrefix(id.Name, "ErrInvalid") || files[id.Name] || i >= len(vs.Values) {
						continue
					}
					src := strings.ReplaceAll(exprString(vs.Values[i]), " ", "")
					assert.True(t, strings.Contains(src, "ErrInvalidArgument") || strings.Contains(src, "errkind.ErrInvalidArgument"),
						"%s: %s = %s is not of the invalid-argument kind", rel, id.Name, src)
				}
			}
		}
	}
}

func exprString(e ast.Expr) string {
	var b strings.Builder
	ast.Inspect(e, func(n ast.Node) bool {
		switch n := n.(type) {
		case *ast.Ident:
			b.WriteString(n.Name + " ")
		case *ast.SelectorExpr:
			b.WriteString(exprString(n.X) + "." + n.Sel.Name + " ")
			return false
		}
		return true
	})
	return b.String()
}
