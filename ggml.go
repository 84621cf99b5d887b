//go:build cgo && !darwin && (amd64 || arm64)

package vlm

import (
	// ggml (core + CPU backend), compiled by internal/cc from the pinned
	// module's sources: for x86-64-v3 on amd64 (cmd/vlm-env: another target).
	_ "github.com/vlm-go/vlm/internal/cc/ggml"

	// A pure-Go package of the pinned module, so that the go command
	// downloads the module whose sources internal/cc compiles.
	_ "github.com/ollama/ollama/version"
)
