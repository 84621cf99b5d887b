package vlm

//go:generate go run ./internal/ccgen

/*
#include "binding.h"
*/
import "C"

import (
	"fmt"
	"strings"
	"sync"

	// internal/cc compiles libllama and libmtmd (and ggml: ggml.go) from
	// the pinned module's sources with vlm's flags.
	_ "github.com/vlm-go/vlm/internal/cc/llama"
	_ "github.com/vlm-go/vlm/internal/cc/mtmd"
)

// LlamaCppCommit is the upstream llama.cpp commit that the pinned
// github.com/ollama/ollama module vendors (with ollama's patches applied).
const LlamaCppCommit = "ec98e2002"

// OllamaModuleVersion is the version of github.com/ollama/ollama pinned in
// go.mod, the module that supplies llama.cpp, ggml and mtmd.
const OllamaModuleVersion = "v0.17.4"

var initOnce sync.Once

// Init initialises llama.cpp's backends and installs vlm's log routing. It
// runs its work exactly once per process, however often and from however many
// goroutines it is called; every other function of this package calls it, so
// programs rarely need to.
func Init() {
	initOnce.Do(func() {
		C.vlm_install_log_callbacks()
		C.llama_backend_init()
		initBackends() // backend.go: GPU modules from $VLM_BACKEND_PATH or beside the program
	})
}

// SystemInfo returns llama.cpp's description of the CPU features and backends
// compiled into this program, e.g. "CPU : SSE3 = 1 | AVX2 = 1 | ...".
func SystemInfo() string {
	Init()
	return strings.TrimSpace(C.GoString(C.llama_print_system_info()))
}

// cxxError is the error of a call through binding_cxx.cpp that threw, or
// nil when e says it did not.
func cxxError(fn string, e *C.vlm_cxx_err) error {
	if e.thrown == 0 {
		return nil
	}
	return fmt.Errorf("%s: %s: %w", fn, C.GoString(&e.msg[0]), ErrNativeException)
}
