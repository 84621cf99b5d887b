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

// logTestThreads runs native threads that write lines in pieces at once
// (binding.c); each line reads "t<i> line <l>: t<i>.0 t<i>.1 ...".
func logTestThreads(threads, lines, pieces int) int {
	return int(C.vlm_log_test_threads(C.int(threads), C.int(lines), C.int(pieces)))
}

// emitTestLog sends text through the same C callback llama.cpp uses. Pieces
// of a line are joined per OS thread: callers lock theirs.
func emitTestLog(level int, text string) {
	cs := C.CString(text)
	defer C.free(unsafe.Pointer(cs))
	C.vlm_log_trampoline(C.enum_ggml_log_level(level), cs, nil)
}
