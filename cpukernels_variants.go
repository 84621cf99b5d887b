//go:build cgo && !darwin && amd64 && !vlm_march

package vlm

import "github.com/vlm-go/vlm/internal/cc/ggml/cpu/avx512"

// CPUKernels names the instruction set that ggml's hottest CPU kernels (matrix
// products, quantized dot products, softmax, activations) use in this process.
//
// A default amd64 build compiles them twice, for x86-64-v3 (AVX2, FMA, F16C)
// and for AVX-512 (x86-64-v4 with VNNI and VBMI), and picks one when the
// program starts: "avx512" when the CPU and OS support it, else "x86-64-v3".
// The environment variable VLM_CPU_VARIANT=x86-64-v3 forces the baseline.
// Builds for one target (VLM_MARCH, arm64, macOS) return "build target".
func CPUKernels() string {
	if avx512.Chosen() {
		return "avx512"
	}
	return "x86-64-v3"
}
