// Package ggufcheck opens a GGUF file and validates it before llama.cpp or
// mtmd sees it, with the error classes the loaders of package llama and
// package mtmd report.
package ggufcheck

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"

	"github.com/vlm-go/vlm/gguf"
)

// Open reads the GGUF metadata at path and runs validate on it. A missing
// file gives an error wrapping notFound and fs.ErrNotExist; a path that is
// not a regular file (a directory, a named pipe, a device: opening a FIFO
// would block forever), a symlink loop, or a file that does not read or
// validate gives one wrapping invalid and the cause. A file that is not GGUF
// says what it looks like (a Git LFS pointer, an HTML page, a text file),
// and one part of a split model says so.
func Open(path string, validate func(*gguf.File) error, notFound, invalid error) (*gguf.File, error) {
	st, err := os.Stat(path)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("%s: %w (%w)", path, notFound, err)
		}
		return nil, fmt.Errorf("%s: %w: %w", path, invalid, err)
	}
	if !st.Mode().IsRegular() {
		return nil, fmt.Errorf("%s: %w: not a regular file (%s)", path, invalid, kind(st.Mode()))
	}
	f, err := gguf.Open(path)
	if errors.Is(err, gguf.ErrNotGGUF) {
		if what := sniff(path); what != "" {
			err = fmt.Errorf("%w: the file is %s", err, what)
		}
	}
	if err == nil {
		err = splitError(f, path)
	}
	if err == nil {
		err = validate(f)
	}
	if err != nil {
		return nil, fmt.Errorf("%s: %w: %w", path, invalid, err)
	}
	return f, nil
}

// kind names a file mode that is not a regular file.
func kind(m fs.FileMode) string {
	switch {
	case m.IsDir():
		return "a directory"
	case m&fs.ModeNamedPipe != 0:
		return "a named pipe"
	case m&fs.ModeSocket != 0:
		return "a socket"
	case m&fs.ModeDevice != 0 || m&fs.ModeCharDevice != 0:
		return "a device"
	}
	return m.Type().String()
}

// sniff says what a file that is not GGUF looks like, from its first bytes.
func sniff(path string) string {
	f, err := os.Open(path)
	if err != nil {
		return ""
	}
	defer f.Close()
	head := make([]byte, 512)
	n, _ := io.ReadFull(f, head)
	head = head[:n]
	low := bytes.ToLower(bytes.TrimSpace(head))
	switch {
	case n == 0:
		return "empty"
	case bytes.HasPrefix(head, []byte("version https://git-lfs.github.com/spec/")):
		return "a Git LFS pointer, not the model itself: fetch the real file (git lfs pull, or download it directly)"
	case bytes.HasPrefix(low, []byte("<!doctype html")) || bytes.HasPrefix(low, []byte("<html")):
		return "an HTML page, not a model: the download saved a web page (use the file's direct download link)"
	case bytes.HasPrefix(low, []byte("{")) || bytes.HasPrefix(low, []byte("<?xml")):
		return "a JSON or XML document, not a model"
	case bytes.HasPrefix(head, []byte("PK\x03\x04")):
		return "a zip archive: unpack it first"
	case bytes.HasPrefix(head, []byte("\x1f\x8b")):
		return "gzip-compressed: unpack it first"
	}
	return ""
}

// splitError refuses a model split into several files (split.count > 1,
// as llama-gguf-split writes them): llama.cpp would look for the other parts
// by name, and vlm validates one file at a time.
func splitError(f *gguf.File, path string) error {
	kv, ok := f.Get("split.count")
	if !ok {
		return nil
	}
	var count uint64
	switch v := kv.Value.(type) {
	case uint16:
		count = uint64(v)
	case uint32:
		count = uint64(v)
	case int32:
		count = uint64(max(v, 0))
	}
	if count <= 1 {
		return nil
	}
	return fmt.Errorf("one part of a model split into %d files: vlm loads single-file models; merge the parts first (llama.cpp's llama-gguf-split --merge FIRST-PART.gguf MERGED.gguf)", count)
}
