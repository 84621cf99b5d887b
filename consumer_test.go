package vlm

import (
	"archive/zip"
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
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
// follows the README's consumer steps: the go get line runs as written, and
// `go run .` is proven without compiling llama.cpp a second time (Go's build
// cache keys name a package's module version, so the consumer's copy of the
// packages could not reuse this checkout's objects): see proveConsumerBuild.
// With VLM_CONSUMER_RUN=1 it also builds and runs the consumer for real, in
// both layouts (a few minutes more on a cold build cache).
func TestConsumerModule(t *testing.T) {
	if testing.Short() {
		t.Skip("skipped in -short mode: builds a separate module")
	}
	root, err := os.Getwd()
	require.NoError(t, err)
	readme, err := os.ReadFile(filepath.Join(root, "README.md"))
	require.NoError(t, err)
	steps := strings.Split(strings.TrimSpace(readmeBlock(t, string(readme), "consumer-steps")), "\n")
	mainGo := readmeBlock(t, string(readme), "consumer-main")
	require.Equal(t, []string{"go get github.com/vlm-go/vlm@latest", "go run ."}, steps,
		"README consumer steps changed: teach the consumer test the new ones")
	fullRun := os.Getenv("VLM_CONSUMER_RUN") == "1"
	if d, ok := t.Deadline(); fullRun && ok && time.Until(d) < 30*time.Minute {
		t.Fatalf("VLM_CONSUMER_RUN=1 compiles llama.cpp twice more (up to 8 minutes each on 2 busy cores): give go test -timeout 40m (it has %v)", time.Until(d).Round(time.Minute))
	}

	base, env := consumerEnv(t, root)
	dir := filepath.Join(base, "mod")
	require.NoError(t, os.RemoveAll(dir))
	require.NoError(t, os.MkdirAll(dir, 0o755))
	require.NoError(t, os.WriteFile(filepath.Join(dir, "go.mod"), []byte("module example.com/vlmconsumer\n\ngo 1.26.0\n"), 0o644))
	require.NoError(t, os.WriteFile(filepath.Join(dir, "main.go"), []byte(mainGo), 0o644))

	runConsumer(t, dir, env, steps[0])
	// The README's `go get` fetched vlm from the proxy, not from this checkout.
	gomod, err := os.ReadFile(filepath.Join(dir, "go.mod"))
	require.NoError(t, err)
	require.Contains(t, string(gomod), "github.com/vlm-go/vlm "+consumerVersion)
	require.NotContains(t, string(gomod), "replace")

	want := cgoGraph(t, root, plainEnv(), "github.com/vlm-go/vlm")
	got := proveConsumerBuild(t, dir, env, false)
	require.Contains(t, got["github.com/vlm-go/vlm"].Dir, filepath.Join(base, "modcache"), "the consumer builds vlm from its module cache")
	requireSameCgoGraph(t, want, got)

	if fullRun {
		out := runConsumer(t, dir, env, steps[1])
		require.Contains(t, out, "llama.cpp "+LlamaCppCommit)
		require.Regexp(t, `(?m)^CPU \(CPU, .*\): .* free of `, out)
		if k := CPUKernels(); k != "build target" {
			// The consumer's binary chose the same kernels as this checkout's.
			require.Contains(t, out, "with "+k+" CPU kernels")
		}
		// go vet needs no settings either.
		runConsumer(t, dir, env, "go vet ./...")
	} else {
		t.Logf("%s: proven by equivalence (VLM_CONSUMER_RUN=1 builds and runs it: llama.cpp compiled again)", steps[1])
	}

	t.Run("vendor", func(t *testing.T) {
		vdir := filepath.Join(base, "vendored")
		require.NoError(t, os.RemoveAll(vdir))
		require.NoError(t, os.CopyFS(vdir, os.DirFS(dir)))
		runConsumer(t, vdir, env, "go mod vendor")
		// Without the headers go mod vendor leaves out, the build stops
		// with an error that names the cause and the fix: every wrapper
		// file says so first (the preprocessor stops there, as go build's
		// compiler does).
		vgraph := cgoGraph(t, vdir, env, ".")
		delete(vgraph, "github.com/vlm-go/vlm") // its C files include the headers before any check
		_, errs := preprocess(t, vdir, env, vgraph, false)
		stopped := map[string]bool{}
		for _, msg := range errs {
			dir, _, _ := strings.Cut(msg, ":")
			rel, err := filepath.Rel(filepath.Join(vdir, "vendor", "github.com", "vlm-go", "vlm"), dir)
			require.NoError(t, err)
			stopped[filepath.ToSlash(rel)] = true
			require.Contains(t, msg, "vlm: github.com/ollama/ollama "+OllamaModuleVersion+" is not where vlm looks for it", "%.2000s", msg)
			require.Contains(t, msg, "A vendor/ folder cannot hold it: see Using vlm from your module", "%.2000s", msg)
		}
		for _, pkg := range []string{"internal/cc/llama", "internal/cc/ggml", "internal/cc/mtmd", "internal/cc/ggml/cpu"} {
			require.True(t, stopped[pkg], "%s built without the module's headers (stopped: %v)", pkg, stopped)
		}
		// The README's fix.
		readmeFix := "go run -mod=mod github.com/vlm-go/vlm/cmd/vlm-env -vendor"
		require.Contains(t, string(readme), "`"+readmeFix+"`")
		runConsumer(t, vdir, env, readmeFix)
		got := proveConsumerBuild(t, vdir, env, true)
		runConsumer(t, vdir, env, "go build "+smallWrapper)
		// It builds from vendor/, which holds no module cache path.
		require.Equal(t, filepath.Join(vdir, "vendor", "github.com", "vlm-go", "vlm", "internal", "cc", "llama"),
			got["github.com/vlm-go/vlm/internal/cc/llama"].Dir)
		requireSameCgoGraph(t, want, got)
		if fullRun {
			out := runConsumer(t, vdir, env, steps[1])
			require.Contains(t, out, "llama.cpp "+LlamaCppCommit)
		}
	})
}

// smallWrapper is the internal/cc package that the consumer tests compile for
// real: one of the smallest (a few seconds).
const smallWrapper = "github.com/vlm-go/vlm/internal/cc/mtmd/models"

// cgoPackage is what go list says of a package with C or C++ files.
type cgoPackage struct {
	ImportPath                          string
	Dir                                 string
	CgoFiles, CFiles, CXXFiles          []string
	CgoCPPFLAGS, CgoCFLAGS, CgoCXXFLAGS []string
	Module                              *struct{ Path string }
}

// cgoGraph returns the packages with cgo in the build graph of pkg, as the go
// command in dir with env sees them, by import path.
func cgoGraph(t *testing.T, dir string, env []string, pkg string) map[string]cgoPackage {
	t.Helper()
	out := goOutput(t, dir, env, "list", "-deps", "-json="+strings.Join([]string{
		"ImportPath", "Dir", "CgoFiles", "CFiles", "CXXFiles", "CgoCPPFLAGS", "CgoCFLAGS", "CgoCXXFLAGS", "Module"}, ","), pkg)
	graph := map[string]cgoPackage{}
	dec := json.NewDecoder(strings.NewReader(out))
	for dec.More() {
		var p cgoPackage
		require.NoError(t, dec.Decode(&p))
		if len(p.CgoFiles) > 0 && p.Module != nil && p.Module.Path == "github.com/vlm-go/vlm" {
			graph[p.ImportPath] = p
		}
	}
	require.Contains(t, graph, "github.com/vlm-go/vlm/internal/cc/llama", "go list %s: no llama.cpp package in the graph", pkg)
	return graph
}

// requireSameCgoGraph checks that a consumer builds the C and C++ code this
// checkout's tests build and run: the same packages, files and compiler flags
// (the wrapper packages' include paths are relative to their folders, so they
// are the same text in every layout; the root package's name its folder).
func requireSameCgoGraph(t *testing.T, want, got map[string]cgoPackage) {
	t.Helper()
	require.ElementsMatch(t, slices.Collect(maps.Keys(want)), slices.Collect(maps.Keys(got)), "packages with cgo")
	for path, w := range want {
		g := got[path]
		require.Equal(t, [][]string{w.CgoFiles, w.CFiles, w.CXXFiles}, [][]string{g.CgoFiles, g.CFiles, g.CXXFiles}, "%s: files", path)
		if path != "github.com/vlm-go/vlm" {
			require.Equal(t, [][]string{w.CgoCPPFLAGS, w.CgoCFLAGS, w.CgoCXXFLAGS}, [][]string{g.CgoCPPFLAGS, g.CgoCFLAGS, g.CgoCXXFLAGS}, "%s: flags", path)
		}
	}
}

// proveConsumerBuild proves, in the consumer module at dir, that `go run .`
// builds what this checkout builds, without compiling llama.cpp again: C and
// C++ files of every cgo package of the program are preprocessed with exactly
// the flags go list reports for them, from their folder, as go build compiles
// them, so their #include lines resolve in this layout (the pinned module's
// sources and headers, vlm's compat headers; the root package's binding.h is
// what its cgo preamble includes) and no #error stops them. With all, every
// file is (a vendor/ folder holds only part of the module, so each file
// proves its own includes); else the first of each package (the module cache
// holds the whole module: one file proves a package's include folders). The
// caller compares the graph with this checkout's (requireSameCgoGraph): the
// same packages, files and flags, which the rest of the suite compiles,
// links and runs.
func proveConsumerBuild(t *testing.T, dir string, env []string, all bool) map[string]cgoPackage {
	t.Helper()
	start := time.Now()
	graph := cgoGraph(t, dir, env, ".")
	n, errs := preprocess(t, dir, env, graph, all)
	require.Empty(t, errs, "C/C++ files that do not preprocess in the consumer's layout")
	t.Logf("%s: %d C/C++ files of %d cgo packages preprocessed in %v", dir, n, len(graph), time.Since(start).Round(time.Second))
	return graph
}

// preprocess runs the C preprocessor over the C/C++ files of graph's
// packages (all of them, or the first of each) and returns how many it ran
// and the failures.
func preprocess(t *testing.T, dir string, env []string, graph map[string]cgoPackage, all bool) (int, []string) {
	t.Helper()
	cc := strings.Fields(strings.TrimSpace(goOutput(t, dir, env, "env", "CC")))
	cxx := strings.Fields(strings.TrimSpace(goOutput(t, dir, env, "env", "CXX")))
	type job struct {
		dir  string
		args []string
	}
	var jobs []job
	for _, p := range graph {
		var files []job
		for _, f := range p.CFiles {
			files = append(files, job{p.Dir, slices.Concat(cc, p.CgoCPPFLAGS, p.CgoCFLAGS, []string{"-E", "-o", os.DevNull, f})})
		}
		for _, f := range p.CXXFiles {
			files = append(files, job{p.Dir, slices.Concat(cxx, p.CgoCPPFLAGS, p.CgoCXXFLAGS, []string{"-E", "-o", os.DevNull, f})})
		}
		if !all && len(files) > 1 {
			files = files[:1]
		}
		jobs = append(jobs, files...)
	}
	var (
		wg   sync.WaitGroup
		mu   sync.Mutex
		errs []string
	)
	work := make(chan job)
	for range runtime.NumCPU() {
		wg.Go(func() {
			for j := range work {
				cmd := exec.Command(j.args[0], j.args[1:]...)
				cmd.Dir = j.dir
				cmd.Env = env
				if out, err := cmd.CombinedOutput(); err != nil {
					mu.Lock()
					errs = append(errs, fmt.Sprintf("%s: %s: %v\n%s", j.dir, strings.Join(j.args, " "), err, out))
					mu.Unlock()
				}
			}
		})
	}
	for _, j := range jobs {
		work <- j
	}
	close(work)
	wg.Wait()
	return len(jobs), errs
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

	env := slices.DeleteFunc(plainEnv(), func(kv string) bool {
		name, _, _ := strings.Cut(kv, "=")
		switch name {
		case "GODEBUG", "GOPROXY", "GOMODCACHE", "GOSUMDB", "GONOSUMDB", "GOPRIVATE", "GONOPROXY", "GOWORK", "GOTOOLCHAIN":
			return true
		}
		return false
	})
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

// plainEnv is this process's environment less what a user who follows the
// README does not set: cgo flags, GOFLAGS, vlm's build variables.
func plainEnv() []string {
	return slices.DeleteFunc(os.Environ(), func(kv string) bool {
		name, _, _ := strings.Cut(kv, "=")
		return strings.HasPrefix(name, "CGO_") || name == "GOFLAGS" || name == "VLM_MARCH" || name == "VLM_PORTABLE"
	})
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
