// Command vlm-env prints the shell lines that set the cgo flags vlm needs:
// include paths into the pinned github.com/ollama/ollama module (which
// supplies llama.cpp, ggml and mtmd), vlm's compatibility headers, and
// optimisation flags.
//
// Run it from any module that requires vlm, then build as usual:
//
//	eval "$(go run github.com/vlm-go/vlm/cmd/vlm-env)"
//	go build ./...
//
// It is pure Go, so it runs before the flags are set. Paths are computed with
// `go list -m` in the current module, so replace directives are honoured.
//
// Flags: -portable compiles for any x86-64-v3 (AVX2) CPU instead of
// -march=native; -march sets the -march value; -shell sh|fish|make picks the
// output syntax. The environment variables VLM_PORTABLE=1 and VLM_MARCH do the
// same as the flags.
package main

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io/fs"
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
	portable := flag.Bool("portable", os.Getenv("VLM_PORTABLE") == "1", "compile for any x86-64-v3 CPU instead of this one (-march=native)")
	march := flag.String("march", os.Getenv("VLM_MARCH"), "compile with this -march value")
	shell := flag.String("shell", "sh", "output syntax: sh, fish or make")
	flag.Parse()

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
	compat, err := stableCompatDir(filepath.Join(vlmDir, "third_party", "compat"))
	if err != nil {
		return nil, err
	}
	includes := []string{
		compat,
		filepath.Join(ollamaDir, "llama", "llama.cpp", "include"),
		filepath.Join(ollamaDir, "llama", "llama.cpp", "tools", "mtmd"),
		filepath.Join(ollamaDir, "ml", "backend", "ggml", "ggml", "include"),
	}
	for _, dir := range includes {
		if st, err := os.Stat(dir); err != nil || !st.IsDir() {
			return nil, fmt.Errorf("expected directory %s is missing: is %s complete? (try `go mod download`)", dir, filepath.Dir(dir))
		}
	}
	// NDEBUG makes llama.cpp a release build, as its own CMake build does:
	// without it, debug checks abort the process instead of returning
	// errors (and cost time).
	cpp := []string{"-DNDEBUG"}
	for _, dir := range includes {
		cpp = append(cpp, "-I"+dir)
	}
	opt := "-O3"
	if m := marchFlag(portable, march); m != "" {
		opt += " " + m
	}
	if runtime.GOARCH == "amd64" {
		// On CPUs with AMX (Xeon Sapphire Rapids and later) -march=native
		// defines __AMX_INT8__, and ggml-cpu.cpp then calls the AMX buffer
		// type from ggml-cpu/amx/, a folder the module's cgo package does
		// not compile: the link fails. vlm builds ggml's CPU backend
		// without AMX, as ollama's own build of this module does.
		opt += " -mno-amx-tile -mno-amx-int8 -mno-amx-bf16"
	}
	return [][2]string{
		{"CGO_ENABLED", "1"},
		{"CGO_CPPFLAGS", strings.Join(cpp, " ")},
		{"CGO_CFLAGS", opt},
		{"CGO_CXXFLAGS", opt},
	}, nil
}

// stableCompatDir returns a folder holding a copy of vlm's compat headers
// whose path depends only on their content: the user cache dir's
// vlm/compat/<hash>. The include path is part of every cgo package's flags
// and so of Go's build cache key; with the checkout's own path there, a
// second clone of the same version would compile llama.cpp again. Where no
// cache dir can be written, the checkout's folder is used.
func stableCompatDir(src string) (string, error) {
	files := map[string][]byte{}
	h := sha256.New()
	err := filepath.WalkDir(src, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		rel, err := filepath.Rel(src, path)
		if err != nil {
			return err
		}
		data, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		files[rel] = data
		fmt.Fprintf(h, "%s\x00%d\x00", filepath.ToSlash(rel), len(data))
		h.Write(data)
		return nil
	})
	if err != nil {
		return "", fmt.Errorf("vlm's compat headers: %w", err)
	}
	base, err := os.UserCacheDir()
	if err != nil {
		return src, nil
	}
	dst := filepath.Join(base, "vlm", "compat", hex.EncodeToString(h.Sum(nil)[:8]))
	if st, err := os.Stat(dst); err == nil && st.IsDir() {
		return dst, nil
	}
	tmp, err := os.MkdirTemp(filepath.Join(base), "vlm-compat-")
	if err != nil {
		return src, nil
	}
	defer os.RemoveAll(tmp)
	for rel, data := range files {
		p := filepath.Join(tmp, rel)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			return src, nil
		}
		if err := os.WriteFile(p, data, 0o644); err != nil {
			return src, nil
		}
	}
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return src, nil
	}
	if err := os.Rename(tmp, dst); err != nil {
		// Another run made it first: use that one.
		if st, serr := os.Stat(dst); serr == nil && st.IsDir() {
			return dst, nil
		}
		return src, nil
	}
	return dst, nil
}

// marchFlag picks the CPU target flag.
func marchFlag(portable bool, march string) string {
	switch {
	case march != "":
		return "-march=" + march
	case portable && runtime.GOARCH == "amd64":
		return "-march=x86-64-v3 -mtune=generic"
	case portable:
		return ""
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

func goList(module string) (string, error) {
	out, err := exec.Command("go", "list", "-m", "-f", "{{.Dir}}", module).Output()
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
