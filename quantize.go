package vlm

/*
#include "binding.h"
*/
import "C"

import (
	"fmt"
	"unsafe"
)

// FileType is a llama.cpp model file type (enum llama_ftype): the type most
// weights are quantized to.
type FileType int

// File types accepted by Quantize.
const (
	FileTypeF32  FileType = C.LLAMA_FTYPE_ALL_F32
	FileTypeF16  FileType = C.LLAMA_FTYPE_MOSTLY_F16
	FileTypeQ8_0 FileType = C.LLAMA_FTYPE_MOSTLY_Q8_0
	FileTypeQ4_0 FileType = C.LLAMA_FTYPE_MOSTLY_Q4_0
)

// Quantize writes src's weights converted to ftype into dst with
// llama_model_quantize, using threads threads (0: all cores).
func Quantize(src, dst string, ftype FileType, threads int) error {
	Init()
	params := C.llama_model_quantize_default_params()
	params.nthread = C.int32_t(threads)
	params.ftype = C.enum_llama_ftype(ftype)
	csrc := C.CString(src)
	defer C.free(unsafe.Pointer(csrc))
	cdst := C.CString(dst)
	defer C.free(unsafe.Pointer(cdst))
	if rc := C.llama_model_quantize(csrc, cdst, &params); rc != 0 {
		return &CodeError{Func: "llama_model_quantize", Code: int(rc), Err: fmt.Errorf("quantizing %s: %w", src, ErrLoad)}
	}
	return nil
}
