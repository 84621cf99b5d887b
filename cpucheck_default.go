//go:build cgo && amd64 && !darwin && !vlm_march

package vlm

// The default build compiles ggml for x86-64-v3 (internal/cc): cpucheck.c
// checks that this CPU runs it.

// #cgo CPPFLAGS: -DVLM_TARGET_X86_64_V3
import "C"
