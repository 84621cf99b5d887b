//go:build !cgo

package vlm

// vlm compiles llama.cpp through cgo. This file is only part of a build with
// CGO_ENABLED=0, and it stops that build with an error naming the cause:
// build with CGO_ENABLED=1, a C/C++ compiler and the flags from build.sh.
var _ = vlm_requires_cgo__build_with_CGO_ENABLED_1_and_a_C_compiler__see_build_sh
