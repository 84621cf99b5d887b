//go:build cgo && !darwin && amd64 && !vlm_march

// Package vlmkern holds CPU kernels written for vlm that take over some of
// ggml's operations where they apply, chosen at run time through the same
// dispatch slots as ggml's AVX-512 copies (internal/ccgen/variants.go):
// today flash attention without a mask (a vision encoder's) on CPUs with
// AVX-512 (fattn_avx512.c). Every other case runs ggml's own kernel.
package vlmkern

// #cgo CFLAGS: -O3 -g0 -std=gnu11 -march=x86-64-v4
// void vlm_fattn_set_ggml(int on);
// int vlm_fattn_get_ggml(void);
// #include <stdint.h>
// uint64_t vlm_fattn_taken(void);
import "C"

// FlashAttentionCalls returns how many flash-attention nodes vlm's kernel
// has computed in this process (ggml's kernel ran the others).
func FlashAttentionCalls() uint64 { return uint64(C.vlm_fattn_taken()) }

// Available reports whether this build has vlm's kernels (they run where
// the AVX-512 dispatch is chosen: see vlm.CPUKernels).
const Available = true

// SetGGMLFlashAttention makes flash attention run ggml's own kernel for
// every case (on) or vlm's where it applies (off, the default unless
// VLM_FLASH_ATTN=ggml is set); it returns the previous setting. For tests
// and benchmarks that compare the two: set it between encodes, not during.
func SetGGMLFlashAttention(on bool) (was bool) {
	was = C.vlm_fattn_get_ggml() != 0
	v := C.int(0)
	if on {
		v = 1
	}
	C.vlm_fattn_set_ggml(v)
	return was
}
