package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// headerTrees are the folders of the pinned module whose headers vlm's
// sources include.
var headerTrees = []string{"ml/backend/ggml/ggml", "llama/llama.cpp"}

// isHeader reports whether name is a C/C++ header.
func isHeader(name string) bool {
	switch filepath.Ext(name) {
	case ".h", ".hpp", ".inc":
		return true
	}
	return false
}

// completeVendor copies into the vendor/ folder of the module in dir the
// headers of the pinned module that go mod vendor leaves out: it copies only
// folders that hold a Go package, and the module keeps ggml.h, llama.h and
// others in folders that hold none. It returns how many files it copied.
func completeVendor(dir string) (int, error) {
	version, err := vendoredVersion(filepath.Join(dir, "vendor", "modules.txt"))
	if err != nil {
		return 0, err
	}
	src, err := moduleCacheDir(dir, version)
	if err != nil {
		return 0, err
	}
	dst := filepath.Join(dir, "vendor", filepath.FromSlash(ollamaModule))
	copied := 0
	for _, tree := range headerTrees {
		root := filepath.Join(src, filepath.FromSlash(tree))
		err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
			if err != nil || d.IsDir() || !isHeader(d.Name()) {
				return err
			}
			rel, err := filepath.Rel(src, p)
			if err != nil {
				return err
			}
			target := filepath.Join(dst, rel)
			if _, err := os.Stat(target); err == nil {
				return nil // go mod vendor copied it (a folder with a Go package)
			}
			data, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			if err := os.MkdirAll(filepath.Dir(target), 0o755); err != nil {
				return err
			}
			if err := os.WriteFile(target, data, 0o644); err != nil {
				return err
			}
			copied++
			return nil
		})
		if err != nil {
			return copied, err
		}
	}
	return copied, nil
}

// vendoredVersion reads the version of the pinned module from modules.txt.
func vendoredVersion(modulesTxt string) (string, error) {
	f, err := os.Open(modulesTxt)
	if err != nil {
		return "", fmt.Errorf("%w: run go mod vendor first", err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fs := strings.Fields(sc.Text())
		if len(fs) >= 3 && fs[0] == "#" && fs[1] == ollamaModule {
			if len(fs) > 3 && fs[3] == "=>" {
				return "", fmt.Errorf("%s is replaced in go.mod: vlm-env -vendor copies from the module cache only", ollamaModule)
			}
			return fs[2], nil
		}
	}
	if err := sc.Err(); err != nil {
		return "", err
	}
	return "", fmt.Errorf("%s lists no %s: does this module require github.com/vlm-go/vlm? (run go mod vendor after go get)", modulesTxt, ollamaModule)
}

// moduleCacheDir returns the module cache's folder of the pinned module at
// version, downloading it when needed.
func moduleCacheDir(dir, version string) (string, error) {
	cmd := exec.Command("go", "mod", "download", "-json", ollamaModule+"@"+version)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "GOFLAGS=-mod=mod")
	out, err := cmd.Output()
	if err != nil {
		msg := ""
		if ee, ok := err.(*exec.ExitError); ok {
			msg = string(ee.Stderr)
		}
		return "", fmt.Errorf("go mod download %s@%s: %v %s%s", ollamaModule, version, err, msg, out)
	}
	var info struct{ Dir string }
	if err := json.Unmarshal(out, &info); err != nil || info.Dir == "" {
		return "", fmt.Errorf("go mod download %s@%s printed no folder: %s", ollamaModule, version, out)
	}
	return info.Dir, nil
}
