package vlm

/*
#include "binding.h"
*/
import "C"

import "unsafe"

// ggml log levels, for tests of the log routing.
const (
	levelDebug = int(C.GGML_LOG_LEVEL_DEBUG)
	levelInfo  = int(C.GGML_LOG_LEVEL_INFO)
	levelError = int(C.GGML_LOG_LEVEL_ERROR)
	levelCont  = int(C.GGML_LOG_LEVEL_CONT)
)

// emitTestLog sends text through the same C callback llama.cpp uses.
func emitTestLog(level int, text string) {
	cs := C.CString(text)
	defer C.free(unsafe.Pointer(cs))
	C.vlm_log_trampoline(C.enum_ggml_log_level(level), cs, nil)
}
