//go:build cgo && (darwin || !(amd64 || arm64))

package vlm

import (
	// On macOS the pinned module's own cgo package compiles ggml, with its
	// Metal backend (embedded shader library) on Apple silicon; internal/cc
	// compiles libllama and libmtmd against the same headers.
	_ "github.com/ollama/ollama/ml/backend/ggml/ggml/src"
)
