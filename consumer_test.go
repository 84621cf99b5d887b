package vlm

import (
	"archive/zip"
	"bufio"
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// readmeBlock returns the fenced code block that follows the HTML comment
// marker in README.md.
func readmeBlock(t *testing.T, readme, marker string) string {
	t.Helper()
	_, after, ok := strings.Cut(readme, "<!-- "+marker+" -->")
	require.True(t, ok, "README.md lost its %q marker", marker)
	sc := bufio.NewScanner(strings.NewReader(after))
	var lines []string
	in := false
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, "```") {
			if in {
				return strings.Join(lines, "\n") + "\n"
			}
			in = true
			continue
		}
		if in {
			lines = append(lines, line)
		}
	}
	t.Fatalf("README.md: no complete code block after %q", marker)
	return ""
}

// consumerVersion is the version under which the consumer tests publish this
// checkout in their own module proxy.
const consumerVersion = "v0.0.0-consumertest"

// TestConsumerModule creates a module that requires vlm the way a user's
// does: from a Go module proxy (a file:// one holding this checkout as a
// module zip, and the module cache's downloads for everything else: no
// network), into a module cache, with no CGO_* or GOFLAGS variables. It
// follows only the README's consumer steps and runs the result.
//
// Its module cache and consumer module sit at fixed places in the user's cache
// directory, so that Go's build cache compiles llama.cpp for them once, not on
// every run (the first run takes as long as a first build of llama.cpp).
func TestConsumerModule(t *testing.T) {
	if testing.Short() {
		t.Skip("skipped in -short mode: builds a separate module and compiles llama.cpp into it")
	}
	root, err := os.Getwd()
	require.NoError(t, err)
	readme, err := os.ReadFile(filepath.Join(root, "README.md"))
	require.NoError(t, err)
	steps := readmeBlock(t, string(readme), "consumer-steps")
	mainGo := readmeBlock(t, string(readme), "consumer-main")
	require.Contains(t, steps, "go get github.com/vlm-go/vlm@latest", "README consumer steps no longer start with go get")

	base, env := consumerEnv(t, root)
	dir := filepath.Join(base, "mod")
	require.NoError(t, os.RemoveAll(dir))
	require.NoError(t, os.MkdirAll(dir, 0o755))
	require.NoError(t, os.WriteFile(filepath.Join(dir, "go.mod"), []byte("module example.com/vlmconsumer\n\ngo 1.26.0\n"), 0o644))
	require.NoError(t, os.WriteFile(filepath.Join(dir, "main.go"), []byte(mainGo), 0o644))

	out := runConsumer(t, dir, env, steps)
	require.Contains(t, out, "llama.cpp "+LlamaCppCommit)
	require.Regexp(t, `(?m)^CPU \(CPU, .*\): .* free of `, out)
	// The README's `go get` fetched vlm from the proxy, not from this checkout.
	gomod, err := os.ReadFile(filepath.Join(dir, "go.mod"))
	require.NoError(t, err)
	require.Contains(t, string(gomod), "github.com/vlm-go/vlm "+consumerVersion)
	require.NotContains(t, string(gomod), "replace")

	if k := CPUKernels(); k != "build target" {
		// The consumer's binary chose the same kernels as this checkout's.
		require.Contains(t, out, "with "+k+" CPU kernels")
	}

	// go vet needs no settings either (gopls runs the same cgo step).
	runConsumer(t, dir, env, "go vet ./...")

	t.Run("vendor", func(t *testing.T) {
		vdir := filepath.Join(base, "vendored")
		require.NoError(t, os.RemoveAll(vdir))
		require.NoError(t, os.CopyFS(vdir, os.DirFS(dir)))
		runConsumer(t, vdir, env, "go mod vendor")
		// Without the headers go mod vendor leaves out, the build stops
		// with an error that names the cause and the fix. (In an empty build
		// cache: Go's cache keys do not cover headers outside a package's
		// folder, so an earlier run's objects would hide the error. One small
		// wrapper package keeps that compile short.)
		fresh := append(slices.Clip(env), "GOCACHE="+t.TempDir())
		msg := runConsumerFails(t, vdir, fresh, "go build github.com/vlm-go/vlm/internal/cc/mtmd/models")
		require.Contains(t, msg, "vlm: github.com/ollama/ollama "+OllamaModuleVersion+" is not where vlm looks for it")
		require.Contains(t, msg, "A vendor/ folder cannot hold it: see Using vlm from your module")
		// The README's fix.
		readmeFix := "go run -mod=mod github.com/vlm-go/vlm/cmd/vlm-env -vendor"
		require.Contains(t, string(readme), "`"+readmeFix+"`")
		runConsumer(t, vdir, env, readmeFix)
		out := runConsumer(t, vdir, env, "go run .")
		require.Contains(t, out, "llama.cpp "+LlamaCppCommit)
		// It built from vendor/, which holds no module cache path.
		out = runConsumer(t, vdir, env, "go list -f '{{.Dir}}' github.com/vlm-go/vlm/internal/cc/llama")
		require.Contains(t, out, filepath.Join(vdir, "vendor", "github.com", "vlm-go", "vlm"))
	})
}

// runConsumerFails runs script in dir, which must fail, and returns its output.
func runConsumerFails(t *testing.T, dir string, env []string, script string) string {
	t.Helper()
	cmd := exec.Command("bash", "-euo", "pipefail", "-c", script)
	cmd.Dir = dir
	cmd.Env = env
	out, err := cmd.CombinedOutput()
	require.Error(t, err, "%s succeeded:\n%s", script, out)
	return string(out)
}

// consumerEnv publishes the checkout in a file:// module proxy and returns the
// directory for consumer modules and the environment to build them in.
func consumerEnv(t *testing.T, root string) (string, []string) {
	t.Helper()
	cache, err := os.UserCacheDir()
	require.NoError(t, err)
	base := filepath.Join(cache, "vlm-consumer-test")
	modcache := filepath.Join(base, "modcache")
	proxy := filepath.Join(base, "proxy")
	realCache := strings.TrimSpace(goOutput(t, root, nil, "env", "GOMODCACHE"))

	env := []string{}
	for _, kv := range os.Environ() {
		name, _, _ := strings.Cut(kv, "=")
		switch {
		case strings.HasPrefix(name, "CGO_"), name == "GOFLAGS", name == "GODEBUG", name == "GOPROXY", name == "GOMODCACHE",
			name == "GOSUMDB", name == "GONOSUMDB", name == "GOPRIVATE", name == "GONOPROXY", name == "GOWORK",
			name == "GOTOOLCHAIN", name == "VLM_MARCH", name == "VLM_PORTABLE":
			continue
		}
		env = append(env, kv)
	}
	env = append(env,
		"GOMODCACHE="+modcache,
		// This checkout first, then what the module cache has downloaded.
		"GOPROXY=file://"+filepath.ToSlash(proxy)+",file://"+filepath.ToSlash(filepath.Join(realCache, "cache", "download")),
		"GOSUMDB=off", // the test version is in no checksum database; nothing leaves the machine
		"GOTOOLCHAIN=local",
		"GOWORK=off",
		// The module cache is immutable to the go command, which indexes
		// its folders once by path; this test reuses one path for every
		// version of the checkout.
		"GODEBUG=goindex=0",
	)
	// A fresh module cache: the consumer must get this checkout's zip, not
	// one extracted by an earlier run.
	if _, err := os.Stat(modcache); err == nil {
		goOutput(t, base, env, "clean", "-modcache")
	}
	require.NoError(t, os.RemoveAll(proxy))
	writeModuleZip(t, root, filepath.Join(proxy, "github.com", "vlm-go", "vlm", "@v"), consumerVersion)
	return base, env
}

func goOutput(t *testing.T, dir string, env []string, args ...string) string {
	t.Helper()
	cmd := exec.Command("go", args...)
	cmd.Dir = dir
	cmd.Env = env
	out, err := cmd.CombinedOutput()
	require.NoError(t, err, "go %s:\n%s", strings.Join(args, " "), out)
	return string(out)
}

func runConsumer(t *testing.T, dir string, env []string, script string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "bash", "-euo", "pipefail", "-c", script)
	cmd.Dir = dir
	cmd.Env = env
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	start := time.Now()
	err := cmd.Run()
	require.NoError(t, err, "consumer steps failed:\n%s\n%s", script, out.String())
	t.Logf("%s: %v", strings.ReplaceAll(strings.TrimSpace(script), "\n", "; "), time.Since(start).Round(time.Second))
	return out.String()
}

// writeModuleZip writes the module proxy files (list, .info, .mod, .zip) of
// the checkout at root as version into dir: the files git tracks or would
// track (so git-ignored build outputs stay out, as in a published version).
func writeModuleZip(t *testing.T, root, dir, version string) {
	t.Helper()
	require.NoError(t, os.MkdirAll(dir, 0o755))
	cmd := exec.Command("git", "ls-files", "-z", "--cached", "--others", "--exclude-standard")
	cmd.Dir = root
	list, err := cmd.Output()
	require.NoError(t, err, "git ls-files (the consumer test needs a git checkout)")
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	prefix := "github.com/vlm-go/vlm@" + version + "/"
	for _, name := range strings.Split(strings.TrimRight(string(list), "\x00"), "\x00") {
		fi, err := os.Lstat(filepath.Join(root, name))
		if err != nil || !fi.Mode().IsRegular() {
			continue // deleted in the work tree, or a link
		}
		if name != "go.mod" && strings.HasSuffix(name, "/go.mod") {
			t.Fatalf("nested module %s: the consumer test does not handle it", name)
		}
		data, err := os.ReadFile(filepath.Join(root, name))
		require.NoError(t, err)
		w, err := zw.Create(prefix + name)
		require.NoError(t, err)
		_, err = w.Write(data)
		require.NoError(t, err)
	}
	require.NoError(t, zw.Close())
	gomod, err := os.ReadFile(filepath.Join(root, "go.mod"))
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(filepath.Join(dir, version+".zip"), buf.Bytes(), 0o644))
	require.NoError(t, os.WriteFile(filepath.Join(dir, version+".mod"), gomod, 0o644))
	require.NoError(t, os.WriteFile(filepath.Join(dir, version+".info"),
		[]byte(`{"Version":"`+version+`","Time":"2026-01-01T00:00:00Z"}`), 0o644))
	require.NoError(t, os.WriteFile(filepath.Join(dir, "list"), []byte(version+"\n"), 0o644))
}
