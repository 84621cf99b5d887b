//go:build !(cgo && !darwin && amd64 && !vlm_march)

package vlmkern

import "errors"

// Available reports whether this build has vlm's kernels: not this one
// (another platform, or a VLM_MARCH build, which has no run-time dispatch).
const Available = false

// SetGGMLFlashAttention does nothing here: ggml's kernel is the only one.
func SetGGMLFlashAttention(on bool) (was bool) { return true }

// FlashAttentionCalls returns 0: vlm's kernel is not in this build.
func FlashAttentionCalls() uint64 { return 0 }

// CheckFlashAttention fails: vlm's kernel is not in this build.
func CheckFlashAttention(c *AttentionCheck) error {
	return errors.New("vlmkern: vlm's flash-attention kernel is not in this build")
}

// FMAPeak returns 0: not measured in this build.
func FMAPeak(threads int, iters int) (flops float64, lanes int) { return 0, 0 }
