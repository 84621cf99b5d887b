//go:build cgo && !(!darwin && amd64 && !vlm_march)

package vlm

// CPUKernels names the instruction set that ggml's hottest CPU kernels use in
// this process. This build compiles them for one target only (VLM_MARCH,
// arm64 or macOS): "build target".
func CPUKernels() string { return "build target" }
