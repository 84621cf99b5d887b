//go:build cgo && !darwin && amd64 && !vlm_march

package vlmkern

// #include "check.h"
import "C"

import "fmt"

// CheckFlashAttention runs the graph with vlm's kernel (where it takes the
// case; see FlashAttentionCalls) and with ggml's, and fills in c's results.
// It needs ggml linked into the program (import github.com/vlm-go/vlm).
func CheckFlashAttention(c *AttentionCheck) error {
	if c.QScale == 0 {
		c.QScale = 1
	}
	a := C.vlm_fattn_check_args{dk: C.int(c.DK), dv: C.int(c.DV), nq: C.int(c.Queries), nkv: C.int(c.Keys), nh: C.int(c.Heads),
		threads: C.int(max(c.Threads, 1)), reps: C.int(c.Reps), seed: C.ulonglong(c.Seed), qscale: C.float(c.QScale)}
	if rc := C.vlm_fattn_check(&a); rc != 0 {
		return fmt.Errorf("vlmkern: flash-attention check failed (%d)", int(rc))
	}
	c.VLMRMS, c.VLMMax, c.GGMLRMS, c.GGMLMax = float64(a.vlm_rms), float64(a.vlm_max), float64(a.ggml_rms), float64(a.ggml_max)
	c.BetweenRMS, c.VLMMs, c.GGMLMs = float64(a.between_rms), float64(a.vlm_ms), float64(a.ggml_ms)
	return nil
}
