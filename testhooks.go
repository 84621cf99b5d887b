//go:build vlmtest

package vlm

// The hooks only the tests use: built with the tag vlmtest, which
// ./build.sh test sets, so production builds do not contain them (nor their
// C in testhooks.c and testhooks_cxx.cpp).

/*
#include "testhooks.h"
*/
import "C"

import (
	"fmt"
	"runtime"
	"unsafe"
)

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

// cxxThrowTest runs the wrappers' catch path with a std::runtime_error
// carrying msg (for tests).
func cxxThrowTest(msg string) error {
	cmsg := C.CString(msg)
	defer C.free(unsafe.Pointer(cmsg))
	var e C.vlm_cxx_err
	if rc := C.vlm_cxx_throw_test(cmsg, &e); rc != -7 {
		return fmt.Errorf("vlm_cxx_throw_test returned %d", int(rc))
	}
	return cxxError("vlm_cxx_throw_test", &e)
}

// HelperEvalChunks evaluates chunks into sequence seq of lctx from position
// nPast with llama.cpp's own mtmd_helper_eval_chunks, and returns the next
// position and the logits of the last output. vlm evaluates chunks in Go
// (package mtmd); this is the reference its tests compare against.
func (x *MtmdContext) HelperEvalChunks(lctx *LlamaContext, chunks *InputChunks, nPast, seq int32, nBatch int) (int32, []float32, error) {
	if !x.Valid() || !lctx.Valid() || chunks == nil || chunks.c == nil {
		return nPast, nil, ErrClosed
	}
	logits := make([]float32, lctx.nVocab)
	var next C.llama_pos
	var cerr C.vlm_cxx_err
	rc := C.vlm_cxx_helper_eval_chunks(x.c, lctx.c, chunks.c, C.llama_pos(nPast), C.llama_seq_id(seq), C.int32_t(nBatch), true,
		&next, (*C.float)(unsafe.Pointer(&logits[0])), &cerr)
	runtime.KeepAlive(chunks)
	if err := cxxError("mtmd_helper_eval_chunks", &cerr); err != nil {
		return nPast, nil, err
	}
	if rc != 0 {
		return nPast, nil, &CodeError{Func: "mtmd_helper_eval_chunks", Code: int(rc), Err: ErrDecode}
	}
	return int32(next), logits, nil
}
