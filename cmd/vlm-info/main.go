// Command vlm-info prints what vlm sees on this machine: the pinned llama.cpp
// version, llama.cpp's system information and the compute devices.
package main

import (
	"fmt"

	"github.com/vlm-go/vlm"
)

func main() {
	fmt.Printf("vlm: llama.cpp %s (github.com/ollama/ollama %s)\n", vlm.LlamaCppCommit, vlm.OllamaModuleVersion)
	fmt.Printf("system: %s\n", vlm.SystemInfo())
	fmt.Printf("cpu kernels: %s\n", vlm.CPUKernels())
	for _, d := range vlm.Devices() {
		fmt.Printf("device %d: %s\n", d.Index, d)
	}
}
