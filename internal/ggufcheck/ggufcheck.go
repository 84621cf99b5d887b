// Package ggufcheck opens a GGUF file and validates it before llama.cpp or
// mtmd sees it, with the error classes the loaders of package llama and
// package mtmd report.
package ggufcheck

import (
	"errors"
	"fmt"
	"io/fs"
	"os"

	"github.com/vlm-go/vlm/gguf"
)

// Open reads the GGUF metadata at path and runs validate on it. A missing
// file gives an error wrapping notFound and fs.ErrNotExist; a file that does
// not read or validate gives one wrapping invalid and the gguf error.
func Open(path string, validate func(*gguf.File) error, notFound, invalid error) (*gguf.File, error) {
	if _, err := os.Stat(path); err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("%s: %w (%w)", path, notFound, err)
		}
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	f, err := gguf.Open(path)
	if err == nil {
		err = validate(f)
	}
	if err != nil {
		return nil, fmt.Errorf("%s: %w: %w", path, invalid, err)
	}
	return f, nil
}
