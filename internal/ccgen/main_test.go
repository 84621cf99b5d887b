package main

import (
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestGenerated fails when internal/cc or cgo_paths.go no longer match the
// pinned module (a version bump, files added or removed upstream, changed
// #cgo directives): run `go generate` in the module root.
func TestGenerated(t *testing.T) {
	root, err := filepath.Abs("../..")
	require.NoError(t, err)
	cfg, err := load(root)
	require.NoError(t, err)
	want, err := generate(cfg)
	require.NoError(t, err)

	for name, data := range want {
		got, err := os.ReadFile(filepath.Join(root, filepath.FromSlash(name)))
		require.NoError(t, err, "%s is missing: run go generate", name)
		require.Equal(t, string(data), string(got), "%s is stale: run go generate", name)
	}
	require.NoError(t, filepath.WalkDir(filepath.Join(root, outRoot), func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		_, ok := want[filepath.ToSlash(rel)]
		require.True(t, ok, "%s is not generated any more: run go generate", rel)
		return nil
	}))
}

// TestIncludePaths checks that every directory a directive names exists in
// at least one of the places it is looked for in this checkout (after
// build.sh's link), and that the binding's version constant is the pinned one.
func TestIncludePaths(t *testing.T) {
	root, err := filepath.Abs("../..")
	require.NoError(t, err)
	cfg, err := load(root)
	require.NoError(t, err)
	files, err := generate(cfg)
	require.NoError(t, err)
	link := filepath.Join(root, filepath.FromSlash(checkoutLink(cfg)))
	if _, err := os.Stat(link); err != nil {
		t.Skipf("%s is missing (./build.sh setup makes it)", link)
	}
	// ${SRCDIR}/path in the root package, path relative to the package's
	// folder in the wrapper packages: both mean the same folder.
	inc := regexp.MustCompile(`-I(?:\$\{SRCDIR\}/)?(\S+)`)
	for name, data := range files {
		if strings.HasSuffix(name, ".h") || strings.HasSuffix(name, "dispatch.c") {
			continue // vlm's own
		}
		if !strings.HasSuffix(name, ".go") {
			// A wrapper: the file it includes exists.
			m := regexp.MustCompile(`(?m)^#include "(.+)"`).FindSubmatch(data)
			require.NotNil(t, m, name)
			_, err := os.Stat(filepath.Join(cfg.ollamaDir, filepath.FromSlash(string(m[1]))))
			require.NoError(t, err, "%s includes a file the module lacks", name)
			continue
		}
		dir := filepath.Dir(filepath.Join(root, filepath.FromSlash(name)))
		for _, line := range strings.Split(string(data), "\n") {
			if !strings.HasPrefix(line, "// #cgo ") {
				continue
			}
			// The three candidates of one path come in a row; one must exist.
			ms := inc.FindAllStringSubmatch(line, -1)
			for i := 0; i < len(ms); {
				n := 1
				if strings.Contains(ms[i][1], "@"+cfg.version) && !strings.Contains(ms[i][1], "third_party") {
					n = 3
					require.LessOrEqual(t, i+n, len(ms), "%s: %s", name, line)
				}
				found := false
				for _, m := range ms[i : i+n] {
					if st, err := os.Stat(filepath.Join(dir, filepath.FromSlash(m[1]))); err == nil && st.IsDir() {
						found = true
					}
				}
				// The module zip lacks llama.cpp's vendor/ (third_party/compat
				// stands in), which the module's own directives name.
				if !found && strings.HasSuffix(ms[i][1], "@"+cfg.version+"/llama/llama.cpp/vendor") {
					found = true
				}
				require.True(t, found, "%s: no directory for %s", name, ms[i][1])
				i += n
			}
		}
	}
	src, err := os.ReadFile(filepath.Join(root, "binding.go"))
	require.NoError(t, err)
	require.Contains(t, string(src), `const OllamaModuleVersion = "`+cfg.version+`"`)
}

// TestPlatformGraphs checks, without compiling, which of internal/cc each
// platform builds: the AVX-512 copies only in a default linux/amd64 build,
// the arm kernels on linux/arm64, the module's own ggml package (with Metal)
// on macOS.
func TestPlatformGraphs(t *testing.T) {
	root, err := filepath.Abs("../..")
	require.NoError(t, err)
	cc := "github.com/vlm-go/vlm/internal/cc/"
	for _, tc := range []struct {
		goos, goarch, tags string
		want, not          []string
	}{
		{"linux", "amd64", "", []string{cc + "ggml/cpu/x86", cc + "ggml/cpu/avx512", cc + "ggml/cpu/avx512ops", cc + "llama", cc + "mtmd"},
			[]string{cc + "ggml/cpu/arm", "github.com/ollama/ollama/ml/backend/ggml/ggml/src"}},
		{"linux", "amd64", "vlm_march", []string{cc + "ggml/cpu/x86", cc + "llama"},
			[]string{cc + "ggml/cpu/avx512", cc + "ggml/cpu/avx512ops"}},
		{"linux", "arm64", "", []string{cc + "ggml/cpu/arm", cc + "ggml/cpu/llamafile", cc + "llama"},
			[]string{cc + "ggml/cpu/x86", cc + "ggml/cpu/avx512"}},
		{"darwin", "arm64", "", []string{"github.com/ollama/ollama/ml/backend/ggml/ggml/src", cc + "llama", cc + "mtmd"},
			[]string{cc + "ggml", cc + "ggml/cpu", cc + "ggml/cpu/avx512"}},
	} {
		name := tc.goos + "/" + tc.goarch
		if tc.tags != "" {
			name += "," + tc.tags
		}
		t.Run(name, func(t *testing.T) {
			cmd := exec.Command("go", "list", "-deps", "-tags="+tc.tags, "-f", "{{.ImportPath}}", "github.com/vlm-go/vlm")
			cmd.Dir = root
			cmd.Env = append(os.Environ(), "GOOS="+tc.goos, "GOARCH="+tc.goarch, "CGO_ENABLED=1", "GOFLAGS=")
			out, err := cmd.CombinedOutput()
			require.NoError(t, err, "%s", out)
			deps := map[string]bool{}
			for _, l := range strings.Fields(string(out)) {
				deps[l] = true
			}
			for _, w := range tc.want {
				assert.True(t, deps[w], "%s builds %s", name, w)
			}
			for _, n := range tc.not {
				assert.False(t, deps[n], "%s does not build %s", name, n)
			}
		})
	}
}
