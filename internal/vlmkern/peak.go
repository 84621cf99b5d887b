//go:build cgo && !darwin && amd64 && !vlm_march

package vlmkern

// #include "peak.h"
import "C"

// FMAPeak measures the CPU's FP32 peak: threads threads each run twelve
// independent chains of FMA instructions, as wide as the CPU has (16 lanes
// with AVX-512, else 8), iters times; it returns the total FLOP/s (an FMA is
// two) and the lane count. Where the cores are busy with other work, it
// reads low.
func FMAPeak(threads int, iters int) (flops float64, lanes int) {
	var l C.int
	f := C.vlm_fma_peak(C.int(threads), C.long(iters), &l)
	return float64(f), int(l)
}
