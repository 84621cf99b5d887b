//go:build !cgo

package vlm

// vlm compiles llama.cpp through cgo. This file is only part of a build with
// CGO_ENABLED=0, and it stops that build with an error naming the cause and
// the fix: set CGO_ENABLED=1 (the default where a C compiler is installed)
// and install gcc and g++ (Debian: apt-get install gcc g++).
var _ = vlm_needs_cgo__set_CGO_ENABLED_1_and_install_gcc_and_gplusplus
