//go:build !cuda

package vlm

// Built without -tags cuda: a GPU is used when a backend module loads, and
// the CPU otherwise.
const requireCUDA = false
