// Command vlm-env is for the special cases of building vlm. A module that
// requires vlm needs none of it: `go get` and `go build` compile llama.cpp,
// ggml and mtmd from the pinned github.com/ollama/ollama module (for
// x86-64-v3 with AVX-512 copies of the hottest kernels on amd64; the
// compiler's default on arm64).
//
//   - One CPU target exactly, e.g. this machine's (-march=native, vlm-env's
//     default) or another (-march=znver4): it prints the lines that export
//     CGO_CFLAGS and CGO_CXXFLAGS with the target and add the build tag
//     vlm_march to GOFLAGS, which drops vlm's own target (a -tags flag on
//     the command line replaces GOFLAGS' tags: add vlm_march there too).
//     CGO_CPPFLAGS names the folders of llama.h, mtmd.h and ggml.h, for
//     programs with C code of their own that includes them.
//
//     eval "$(go run github.com/vlm-go/vlm/cmd/vlm-env)"
//     go build ./...
//
//   - vlm neither in the module cache nor in vendor/ (a checkout, or a
//     replace directive to a local path), where vlm's cgo directives do not
//     find the pinned module: every run (use -portable to print no flags)
//     links it at third_party/ollama@VERSION in vlm's folder (git-ignored)
//     and says so. ./build.sh does this in a checkout.
//
//   - After go mod vendor: -vendor copies the pinned module's header
//     folders that vendor/ lacks (go mod vendor copies only folders with Go
//     packages) from the module cache; run it from the module's root:
//
//     go mod vendor
//     go run -mod=mod github.com/vlm-go/vlm/cmd/vlm-env -vendor
//
// It is pure Go, so it runs before any flags are set. Paths are computed with
// `go list -m` in the current module, so replace directives are honoured.
//
// Flags: -portable keeps vlm's default target and prints no flags; -march
// sets the -march value; -shell sh|fish|make picks the output syntax;
// -vendor completes vendor/. The environment variables VLM_PORTABLE=1 and
// VLM_MARCH do the same as -portable and -march.
package main

import (
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
)

const (
	vlmModule    = "github.com/vlm-go/vlm"
	ollamaModule = "github.com/ollama/ollama"
)

func main() {
	portable := flag.Bool("portable", os.Getenv("VLM_PORTABLE") == "1", "keep vlm's default target (any x86-64-v3 CPU on amd64) instead of this one (-march=native)")
	march := flag.String("march", os.Getenv("VLM_MARCH"), "compile with this -march value")
	shell := flag.String("shell", "sh", "output syntax: sh, fish or make")
	vendor := flag.Bool("vendor", false, "after go mod vendor: copy the pinned module's header folders that vendor/ lacks from the module cache, and print nothing else")
	flag.Parse()

	if *vendor {
		n, err := completeVendor(".")
		if err != nil {
			fmt.Fprintln(os.Stderr, "vlm-env:", err)
			os.Exit(1)
		}
		fmt.Fprintf(os.Stderr, "vlm-env: copied %d header files of %s into vendor/ (go mod vendor copies only folders with Go packages); run this again after every go mod vendor\n", n, ollamaModule)
		return
	}

	vars, err := cgoEnv(*portable, *march)
	if err != nil {
		fmt.Fprintln(os.Stderr, "vlm-env:", err)
		os.Exit(1)
	}
	for _, kv := range vars {
		switch *shell {
		case "fish":
			fmt.Printf("set -gx %s %s\n", kv[0], quote(kv[1]))
		case "make":
			fmt.Printf("export %s := %s\n", kv[0], kv[1])
		case "sh":
			fmt.Printf("export %s=%s\n", kv[0], quote(kv[1]))
		default:
			fmt.Fprintf(os.Stderr, "vlm-env: unknown -shell %q (want sh, fish or make)\n", *shell)
			os.Exit(2)
		}
	}
}

// cgoEnv returns the environment variables, in order, as name/value pairs.
func cgoEnv(portable bool, march string) ([][2]string, error) {
	dirs, err := moduleDirs(vlmModule, ollamaModule)
	if err != nil {
		return nil, err
	}
	vlmDir, ollamaDir := dirs[0], dirs[1]
	version, err := goListField(ollamaModule, "{{.Version}}")
	if err != nil {
		return nil, err
	}
	if err := ensureLayout(vlmDir, ollamaDir, version); err != nil {
		return nil, err
	}
	vars := [][2]string{{"CGO_ENABLED", "1"}}
	m := marchFlag(portable, march)
	if m == "" {
		// vlm's own directives: nothing to add.
		return vars, nil
	}
	opt := "-O3 " + m
	if runtime.GOARCH == "amd64" {
		// On CPUs with AMX (Xeon Sapphire Rapids and later) -march=native
		// defines __AMX_INT8__, and ggml-cpu.cpp then calls the AMX buffer
		// type from ggml-cpu/amx/, a folder that vlm (like the module's cgo
		// package) does not compile: the link fails. vlm builds ggml's CPU
		// backend without AMX, as ollama's own build of this module does.
		opt += " -mno-amx-tile -mno-amx-int8 -mno-amx-bf16"
	}
	// The headers' folders too, for programs with C code of their own that
	// includes llama.h or mtmd.h beside vlm (a C timing loop, say); vlm's
	// own directives name them already.
	// And vlm's stand-ins for the headers the module zip lacks, which the
	// module's own cgo packages need (such a program may link them).
	cpp := []string{"-DNDEBUG", "-I" + filepath.Join(vlmDir, "third_party", "compat")}
	for _, rel := range []string{"llama/llama.cpp/include", "llama/llama.cpp/tools/mtmd", "ml/backend/ggml/ggml/include"} {
		cpp = append(cpp, "-I"+filepath.Join(ollamaDir, filepath.FromSlash(rel)))
	}
	return append(vars,
		[2]string{"CGO_CPPFLAGS", strings.Join(cpp, " ")},
		[2]string{"CGO_CFLAGS", opt},
		[2]string{"CGO_CXXFLAGS", opt},
		[2]string{"GOFLAGS", withTag(os.Getenv("GOFLAGS"), marchTag)},
	), nil
}

// marchTag drops vlm's own -march from its cgo directives: gcc uses the last
// -march it is given, and cgo puts CGO_CFLAGS before a package's directives.
const marchTag = "vlm_march"

// withTag adds tag to the -tags flag in goflags (or adds the flag).
func withTag(goflags, tag string) string {
	f := strings.Fields(goflags)
	for i, a := range f {
		name, val, ok := strings.Cut(strings.TrimPrefix(a, "-"), "=")
		if !ok || (name != "tags" && name != "-tags") {
			continue
		}
		for _, t := range strings.Split(val, ",") {
			if t == tag {
				return goflags
			}
		}
		if val == "" {
			f[i] = a + tag
		} else {
			f[i] = a + "," + tag
		}
		return strings.Join(f, " ")
	}
	return strings.Join(append(f, "-tags="+tag), " ")
}

// ensureLayout checks that vlm's cgo directives find the pinned module from
// vlmDir: beside vlm in the module cache, under vendor/, or at the link
// third_party/ollama@VERSION. Where none holds (a checkout of vlm, or a
// replace directive to one), it makes that link.
func ensureLayout(vlmDir, ollamaDir, version string) error {
	n := len(strings.Split(vlmModule, "/"))
	top := vlmDir
	for range n {
		top = filepath.Dir(top)
	}
	link := filepath.Join(vlmDir, "third_party", "ollama@"+version)
	for _, dir := range []string{
		filepath.Join(top, filepath.FromSlash(ollamaModule)+"@"+version), // module cache
		filepath.Join(top, filepath.FromSlash(ollamaModule)),             // vendor/
	} {
		if same(dir, ollamaDir) {
			return nil
		}
	}
	if same(link, ollamaDir) {
		return nil
	}
	// A stale link (another version or module cache) goes.
	if olds, _ := filepath.Glob(filepath.Join(vlmDir, "third_party", "ollama@*")); len(olds) > 0 {
		for _, old := range olds {
			if fi, err := os.Lstat(old); err == nil && fi.Mode()&os.ModeSymlink != 0 {
				os.Remove(old)
			}
		}
	}
	if err := os.Symlink(ollamaDir, link); err != nil {
		return fmt.Errorf("vlm at %s is neither in the module cache nor in vendor/, so its cgo directives look for %s at %s, and linking it there failed: %w",
			vlmDir, ollamaModule, link, err)
	}
	fmt.Fprintf(os.Stderr, "vlm-env: linked %s -> %s (vlm at %s is a checkout or a local replace, where its cgo directives look for %s there; git-ignored)\n",
		link, ollamaDir, vlmDir, ollamaModule)
	return nil
}

// same reports whether a and b are the same existing directory.
func same(a, b string) bool {
	sa, err1 := os.Stat(a)
	sb, err2 := os.Stat(b)
	return err1 == nil && err2 == nil && os.SameFile(sa, sb)
}

// marchFlag picks the CPU target flag.
func marchFlag(portable bool, march string) string {
	switch {
	case march != "":
		return "-march=" + march
	case portable:
		return "" // vlm's default: x86-64-v3 on amd64
	case runtime.GOOS == "darwin" && runtime.GOARCH == "arm64":
		return "-mcpu=native"
	}
	return "-march=native"
}

// moduleDirs asks the go command where each module's files are, from the
// point of view of the module in the current directory. A module that is not
// yet downloaded is downloaded first.
func moduleDirs(paths ...string) ([]string, error) {
	dirs := make([]string, len(paths))
	for i, p := range paths {
		dir, err := goList(p)
		if err == nil && dir == "" {
			if out, derr := exec.Command("go", "mod", "download", p).CombinedOutput(); derr != nil {
				return nil, fmt.Errorf("go mod download %s: %v: %s", p, derr, strings.TrimSpace(string(out)))
			}
			dir, err = goList(p)
		}
		if err != nil {
			return nil, err
		}
		if dir == "" {
			return nil, fmt.Errorf("module %s has no directory: run `go mod download %s`", p, p)
		}
		dirs[i] = dir
	}
	return dirs, nil
}

func goList(module string) (string, error) { return goListField(module, "{{.Dir}}") }

func goListField(module, format string) (string, error) {
	out, err := exec.Command("go", "list", "-m", "-f", format, module).Output()
	if err != nil {
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			return "", fmt.Errorf("go list -m %s: %s (is %s in your go.mod? run `go get %s`)",
				module, strings.TrimSpace(string(ee.Stderr)), module, vlmModule)
		}
		return "", fmt.Errorf("go list -m %s: %w", module, err)
	}
	return strings.TrimSpace(string(out)), nil
}

// quote quotes s for a POSIX or fish shell.
func quote(s string) string {
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}
