package vlm

/*
#include "binding.h"
*/
import "C"

import (
	"fmt"
	"runtime"
	"sync"
	"unsafe"
)

// MediaMarker returns mtmd's default marker, "<__media__>": each occurrence
// in a prompt stands for one image.
func MediaMarker() string { Init(); return C.GoString(C.mtmd_default_marker()) }

// ProjectorParams are the options of LoadProjector (mtmd_context_params).
type ProjectorParams struct {
	UseGPU         bool   // run the vision encoder on the GPU when one is present
	Threads        int    // encoder threads; 0: mtmd's default
	ImageMinTokens int    // dynamic-resolution projectors only; 0: from the file
	ImageMaxTokens int    // dynamic-resolution projectors only; 0: from the file
	Warmup         bool   // run a warm-up encode at load
	Marker         string // media marker; empty: mtmd's default
	// IdlePriority runs each encode on a thread of its own at the lowest
	// CPU priority (Linux SCHED_IDLE; ggml's worker threads for the encode
	// inherit it), so that any other thread of the process — decoding,
	// prefilling — takes a core from the encoder at once, and the encoder
	// has every core nothing else wants. Where IdlePriorityWorks is false
	// encodes run at the caller's priority.
	IdlePriority bool
}

// IdlePriorityWorks reports whether ProjectorParams.IdlePriority takes
// effect here: Linux, where a thread may give itself SCHED_IDLE (a
// sandbox could refuse it). It probes once.
func IdlePriorityWorks() bool {
	idleOnce.Do(func() { idleWorks = bool(C.vlm_idle_priority_works()) })
	return idleWorks
}

var (
	idleOnce  sync.Once
	idleWorks bool
)

// MtmdContext is a loaded vision projector bound to a text model (struct
// mtmd_context). Encoding is not safe for concurrent use.
type MtmdContext struct {
	c     *C.mtmd_context
	nEmbd int  // llama_model_n_embd_inp of the text model: the width of mtmd's output rows
	idle  bool // encode at the lowest CPU priority (ProjectorParams.IdlePriority)
}

// LoadProjector loads an mmproj file for model m with mtmd_init_from_file.
// The file must have been checked (gguf.ValidateProjector) first: mtmd
// aborts the process on some malformed files.
func LoadProjector(path string, m *LlamaModel, p ProjectorParams) (*MtmdContext, error) {
	if !m.Valid() {
		return nil, ErrClosed
	}
	if m.vocabOnly {
		return nil, fmt.Errorf("projector %s needs the text model's weights: %w; load the model without VocabOnly", path, ErrVocabOnly)
	}
	params := C.mtmd_context_params_default()
	params.use_gpu = C.bool(p.UseGPU)
	params.print_timings = false
	if p.Threads > 0 {
		params.n_threads = C.int(p.Threads)
	}
	params.image_min_tokens = C.int(p.ImageMinTokens)
	params.image_max_tokens = C.int(p.ImageMaxTokens)
	params.warmup = C.bool(p.Warmup)
	if p.Marker != "" {
		cmarker := C.CString(p.Marker)
		defer C.free(unsafe.Pointer(cmarker))
		params.media_marker = cmarker
	}
	cpath := C.CString(path)
	defer C.free(unsafe.Pointer(cpath))
	mark := recentErrors.mark()
	c := C.vlm_mtmd_init_from_file(cpath, m.c, params)
	if c == nil {
		if cause := loadCause(mark); cause != "" {
			return nil, fmt.Errorf("mtmd could not load projector %s: %s: %w", path, cause, ErrLoad)
		}
		return nil, fmt.Errorf("mtmd could not load projector %s: %w", path, ErrLoad)
	}
	// mtmd sizes its output rows by the text model's input width (it
	// refuses projectors whose width differs), read here from C, not from
	// a caller.
	nEmbd := int(C.llama_model_n_embd_inp(m.c))
	if nEmbd <= 0 {
		C.vlm_mtmd_free(c)
		return nil, fmt.Errorf("text model reports input width %d: %w", nEmbd, ErrLoad)
	}
	return &MtmdContext{c: c, nEmbd: nEmbd, idle: p.IdlePriority && IdlePriorityWorks()}, nil
}

// NEmbd returns the width of the embeddings Encode returns (the text
// model's input width, llama_model_n_embd_inp); 0 once freed.
func (x *MtmdContext) NEmbd() int {
	if !x.Valid() {
		return 0
	}
	return x.nEmbd
}

// Free releases the projector. Later calls return ErrClosed, or false and
// 0 where a method has no error result.
func (x *MtmdContext) Free() {
	if x == nil || x.c == nil {
		return
	}
	C.vlm_mtmd_free(x.c)
	x.c = nil
}

// Valid reports whether the projector is loaded and not freed.
func (x *MtmdContext) Valid() bool { return x != nil && x.c != nil }

// UseNonCausal reports whether image embeddings must be decoded with
// non-causal attention.
func (x *MtmdContext) UseNonCausal() bool {
	return x.Valid() && bool(C.mtmd_decode_use_non_causal(x.c))
}

// UseMRoPE reports whether the text model takes M-RoPE (4-plane) positions.
func (x *MtmdContext) UseMRoPE() bool { return x.Valid() && bool(C.mtmd_decode_use_mrope(x.c)) }

// SupportsVision reports whether the projector takes images.
func (x *MtmdContext) SupportsVision() bool { return x.Valid() && bool(C.mtmd_support_vision(x.c)) }

// SupportsAudio reports whether the projector takes audio.
func (x *MtmdContext) SupportsAudio() bool { return x.Valid() && bool(C.mtmd_support_audio(x.c)) }

// Bitmap is an RGB image (or audio) in C memory (mtmd_bitmap).
type Bitmap struct {
	c *C.mtmd_bitmap
}

// NewBitmap copies an RGB image of nx × ny pixels (3 bytes each, row-major)
// into a bitmap with the given id (used for caching; may be empty).
func NewBitmap(nx, ny int, rgb []byte, id string) (*Bitmap, error) {
	if nx <= 0 || ny <= 0 || nx > 1<<16 || ny > 1<<16 || len(rgb) != nx*ny*3 {
		return nil, fmt.Errorf("bitmap %d×%d with %d bytes: %w", nx, ny, len(rgb), ErrInvalidArgument)
	}
	c := C.mtmd_bitmap_init(C.uint32_t(nx), C.uint32_t(ny), (*C.uchar)(unsafe.Pointer(unsafe.SliceData(rgb))))
	runtime.KeepAlive(rgb)
	if c == nil {
		return nil, fmt.Errorf("mtmd_bitmap_init failed: %w", ErrInvalidArgument)
	}
	if id != "" {
		cid := C.CString(id)
		C.mtmd_bitmap_set_id(c, cid)
		C.free(unsafe.Pointer(cid))
	}
	return &Bitmap{c: c}, nil
}

// Free releases the bitmap; later calls return zero values.
func (b *Bitmap) Free() {
	if b == nil || b.c == nil {
		return
	}
	C.mtmd_bitmap_free(b.c)
	b.c = nil
}

// Size returns the bitmap's width and height.
func (b *Bitmap) Size() (nx, ny int) {
	if b == nil || b.c == nil {
		return 0, 0
	}
	return int(C.mtmd_bitmap_get_nx(b.c)), int(C.mtmd_bitmap_get_ny(b.c))
}

// ID returns the bitmap's id.
func (b *Bitmap) ID() string {
	if b == nil || b.c == nil {
		return ""
	}
	return C.GoString(C.mtmd_bitmap_get_id(b.c))
}

// ChunkType says what an input chunk holds.
type ChunkType int

// Chunk types.
const (
	ChunkText  ChunkType = C.MTMD_INPUT_CHUNK_TYPE_TEXT
	ChunkImage ChunkType = C.MTMD_INPUT_CHUNK_TYPE_IMAGE
	ChunkAudio ChunkType = C.MTMD_INPUT_CHUNK_TYPE_AUDIO
)

// String returns "text", "image" or "audio".
func (t ChunkType) String() string {
	switch t {
	case ChunkText:
		return "text"
	case ChunkImage:
		return "image"
	case ChunkAudio:
		return "audio"
	}
	return fmt.Sprintf("ChunkType(%d)", int(t))
}

// InputChunks is the result of Tokenize: text and media chunks in prompt
// order (mtmd_input_chunks).
type InputChunks struct {
	c *C.mtmd_input_chunks
}

// Tokenize splits text at each media marker and pairs the markers with
// bitmaps, in order. Errors: the marker count does not match the bitmaps
// (ErrInvalidArgument), preprocessing failed (ErrDecode).
func (x *MtmdContext) Tokenize(text string, addSpecial, parseSpecial bool, bitmaps []*Bitmap) (*InputChunks, error) {
	if !x.Valid() {
		return nil, ErrClosed
	}
	ctext := C.CString(text)
	defer C.free(unsafe.Pointer(ctext))
	in := C.mtmd_input_text_init(ctext, C.bool(addSpecial), C.bool(parseSpecial))
	if in == nil {
		return nil, fmt.Errorf("mtmd_input_text_init failed: %w", ErrInvalidArgument)
	}
	defer C.mtmd_input_text_free(in)
	var arr **C.mtmd_bitmap
	if len(bitmaps) > 0 {
		arr = (**C.mtmd_bitmap)(C.malloc(C.size_t(len(bitmaps)) * C.size_t(unsafe.Sizeof((*C.mtmd_bitmap)(nil)))))
		defer C.free(unsafe.Pointer(arr))
		view := unsafe.Slice(arr, len(bitmaps))
		for i, b := range bitmaps {
			if b == nil || b.c == nil {
				return nil, fmt.Errorf("bitmap %d is nil or freed: %w", i, ErrInvalidArgument)
			}
			view[i] = b.c
		}
	}
	chunks := C.mtmd_input_chunks_init()
	if chunks == nil {
		return nil, fmt.Errorf("mtmd_input_chunks_init failed: %w", ErrInvalidArgument)
	}
	var cerr C.vlm_cxx_err
	rc := C.vlm_cxx_mtmd_tokenize(x.c, chunks, in, arr, C.size_t(len(bitmaps)), &cerr)
	runtime.KeepAlive(bitmaps) // the caller's Bitmaps may have cleanups that free b.c
	if err := cxxError("mtmd_tokenize", &cerr); err != nil {
		C.mtmd_input_chunks_free(chunks)
		return nil, err
	}
	switch rc {
	case 0:
		return &InputChunks{c: chunks}, nil
	case 1:
		C.mtmd_input_chunks_free(chunks)
		return nil, &CodeError{Func: "mtmd_tokenize", Code: int(rc),
			Err: fmt.Errorf("the number of media markers does not match the %d images: %w", len(bitmaps), ErrInvalidArgument)}
	}
	C.mtmd_input_chunks_free(chunks)
	return nil, &CodeError{Func: "mtmd_tokenize", Code: int(rc), Err: fmt.Errorf("image preprocessing failed: %w", ErrDecode)}
}

// Free releases the chunks; later calls return ErrClosed or 0.
func (c *InputChunks) Free() {
	if c == nil || c.c == nil {
		return
	}
	C.mtmd_input_chunks_free(c.c)
	c.c = nil
}

// Len returns the number of chunks.
func (c *InputChunks) Len() int {
	if c == nil || c.c == nil {
		return 0
	}
	return int(C.mtmd_input_chunks_size(c.c))
}

// ChunkInfo describes one input chunk.
type ChunkInfo struct {
	Type    ChunkType
	NTokens int     // tokens (text) or embeddings (media) it adds
	NPos    int     // positions it takes (differs from NTokens with M-RoPE)
	ID      string  // media id (the bitmap's), empty for text
	Tokens  []Token // the text tokens; nil for media
	NX, NY  int     // grid of image tokens; 0 for text
}

// Chunk returns chunk i.
func (c *InputChunks) Chunk(i int) (ChunkInfo, error) {
	if c == nil || c.c == nil {
		return ChunkInfo{}, ErrClosed
	}
	if i < 0 || i >= c.Len() {
		return ChunkInfo{}, fmt.Errorf("chunk %d of %d: %w", i, c.Len(), ErrInvalidArgument)
	}
	ch := C.mtmd_input_chunks_get(c.c, C.size_t(i))
	info := ChunkInfo{
		Type:    ChunkType(C.mtmd_input_chunk_get_type(ch)),
		NTokens: int(C.mtmd_input_chunk_get_n_tokens(ch)),
		NPos:    int(C.mtmd_input_chunk_get_n_pos(ch)),
	}
	if info.Type == ChunkText {
		var n C.size_t
		p := C.mtmd_input_chunk_get_tokens_text(ch, &n)
		if n > 0 {
			info.Tokens = append([]Token(nil), unsafe.Slice((*Token)(unsafe.Pointer(p)), int(n))...)
		}
		return info, nil
	}
	if id := C.mtmd_input_chunk_get_id(ch); id != nil {
		info.ID = C.GoString(id)
	}
	if img := C.mtmd_input_chunk_get_tokens_image(ch); img != nil {
		info.NX = int(C.mtmd_image_tokens_get_nx(img))
		info.NY = int(C.mtmd_image_tokens_get_ny(img))
	}
	return info, nil
}

// Encode runs the encoder on media chunk i of chunks and returns a copy of
// its output embeddings: NTokens rows of NEmbd floats (the text model's
// input width, which the projector was loaded for).
func (x *MtmdContext) Encode(chunks *InputChunks, i int) ([]float32, error) {
	info, err := chunks.Chunk(i)
	if err != nil {
		return nil, err
	}
	if !x.Valid() {
		return nil, ErrClosed
	}
	if info.Type == ChunkText {
		return nil, fmt.Errorf("chunk %d is text, not media: %w", i, ErrInvalidArgument)
	}
	ch := C.mtmd_input_chunks_get(chunks.c, C.size_t(i))
	var cerr C.vlm_cxx_err
	var rc C.int32_t
	if x.idle {
		var idle C.bool
		rc = C.vlm_cxx_mtmd_encode_chunk_idle(x.c, ch, &idle, &cerr)
	} else {
		rc = C.vlm_cxx_mtmd_encode_chunk(x.c, ch, &cerr)
	}
	runtime.KeepAlive(chunks)
	if err := cxxError("mtmd_encode_chunk", &cerr); err != nil {
		return nil, err
	}
	if rc != 0 {
		return nil, &CodeError{Func: "mtmd_encode_chunk", Code: int(rc), Err: ErrDecode}
	}
	p := C.mtmd_get_output_embd(x.c)
	if p == nil {
		return nil, &CodeError{Func: "mtmd_get_output_embd", Err: ErrDecode}
	}
	return append([]float32(nil), unsafe.Slice((*float32)(unsafe.Pointer(p)), info.NTokens*x.nEmbd)...), nil
}
