package vlm

/*
#include "binding.h"
*/
import "C"

import (
	"fmt"
	"os"
	"runtime/cgo"
	"strings"
	"sync/atomic"
	"unsafe"
)

// ModelParams are the options of LoadModel (llama_model_params).
type ModelParams struct {
	GPULayers int  // layers to offload to the GPU; -1 means all, 0 none
	MainGPU   int  // device index used when the model is not split
	NoMmap    bool // read the file instead of mapping it
	Mlock     bool // lock the weights in RAM
	VocabOnly bool // load the vocabulary and metadata only
	// Progress, if set, is called with values from 0 to 1 while the
	// weights load; returning false cancels the load (ErrCancelled).
	Progress func(progress float32) bool
}

// LlamaModel is a loaded llama.cpp model (struct llama_model). Its methods
// may be called from many goroutines; Free must not race with them (the llama
// package guarantees that).
type LlamaModel struct {
	c         *C.struct_llama_model
	vocab     *C.struct_llama_vocab
	vocabOnly bool // loaded with ModelParams.VocabOnly: no layers, no weights
}

// LoadModel loads a GGUF model with llama_model_load_from_file. The file must
// have been checked (gguf.ValidateModel): llama.cpp aborts the process on some
// malformed files.
func LoadModel(path string, p ModelParams) (*LlamaModel, error) {
	Init()
	if _, err := os.Stat(path); err != nil {
		return nil, err
	}
	params := C.llama_model_default_params()
	params.n_gpu_layers = C.int32_t(p.GPULayers)
	if p.GPULayers < 0 {
		params.n_gpu_layers = 999
	}
	params.main_gpu = C.int32_t(p.MainGPU)
	params.use_mmap = C.bool(!p.NoMmap)
	params.use_mlock = C.bool(p.Mlock)
	params.vocab_only = C.bool(p.VocabOnly)

	var cancelled atomic.Bool
	if p.Progress != nil {
		h := cgo.NewHandle(progressState{fn: p.Progress, cancelled: &cancelled})
		defer h.Delete()
		C.vlm_set_progress(&params, C.uintptr_t(h))
	}
	cpath := C.CString(path)
	defer C.free(unsafe.Pointer(cpath))
	mark := recentErrors.mark()
	m := C.llama_model_load_from_file(cpath, params)
	if m == nil {
		if cancelled.Load() {
			return nil, fmt.Errorf("loading %s: %w", path, ErrCancelled)
		}
		if cause := loadCause(mark); cause != "" {
			return nil, fmt.Errorf("llama.cpp could not load %s: %s: %w", path, cause, ErrLoad)
		}
		return nil, fmt.Errorf("llama.cpp could not load %s: %w", path, ErrLoad)
	}
	return &LlamaModel{c: m, vocab: C.llama_model_get_vocab(m), vocabOnly: p.VocabOnly}, nil
}

type progressState struct {
	fn        func(float32) bool
	cancelled *atomic.Bool
}

//export vlmGoProgress
func vlmGoProgress(progress C.float, handle C.uintptr_t) C.bool {
	st := cgo.Handle(handle).Value().(progressState)
	if st.fn(float32(progress)) {
		return true
	}
	st.cancelled.Store(true)
	return false
}

// Free releases the model. Later calls return ErrClosed, or zero values (0,
// "", false, -1 for token ids) where a method has no error result.
func (m *LlamaModel) Free() {
	if m == nil || m.c == nil {
		return
	}
	C.llama_model_free(m.c)
	m.c, m.vocab = nil, nil
}

// Valid reports whether the model is loaded and not freed.
func (m *LlamaModel) Valid() bool { return m != nil && m.c != nil }

// VocabOnly reports whether the model was loaded with ModelParams.VocabOnly.
// Such a model has a vocabulary and metadata but no layers or weights:
// llama.cpp skips every hyperparameter past general.name
// (llama_model::load_hparams), so NCtxTrain, NEmbd, NEmbdInput and NLayer
// are 0, Description is empty, NHead and NHeadKV return 0 instead of
// calling llama.cpp (which aborts: llama_hparams::n_head(0) with no layers),
// and NewContext and LoadProjector fail with ErrVocabOnly.
func (m *LlamaModel) VocabOnly() bool { return m != nil && m.vocabOnly }

// NEmbd returns the embedding size (llama_model_n_embd).
func (m *LlamaModel) NEmbd() int {
	if !m.Valid() {
		return 0
	}
	return int(C.llama_model_n_embd(m.c))
}

// NEmbdInput returns the size of input embeddings (llama_model_n_embd_inp),
// which a vision projector's output must match.
func (m *LlamaModel) NEmbdInput() int {
	if !m.Valid() {
		return 0
	}
	return int(C.llama_model_n_embd_inp(m.c))
}

// NLayer returns the number of layers.
func (m *LlamaModel) NLayer() int {
	if !m.Valid() {
		return 0
	}
	return int(C.llama_model_n_layer(m.c))
}

// NHead returns the number of attention heads (of layer 0); 0 for a
// vocab-only model, for which llama.cpp would abort.
func (m *LlamaModel) NHead() int {
	if !m.Valid() || m.vocabOnly {
		return 0
	}
	return int(C.llama_model_n_head(m.c))
}

// NHeadKV returns the number of key/value heads (of layer 0); 0 for a
// vocab-only model, for which llama.cpp would abort.
func (m *LlamaModel) NHeadKV() int {
	if !m.Valid() || m.vocabOnly {
		return 0
	}
	return int(C.llama_model_n_head_kv(m.c))
}

// PositionsPerToken returns how many position values each token takes: 4
// for M-RoPE models (Qwen2-VL style), else 1.
func (m *LlamaModel) PositionsPerToken() int {
	if !m.Valid() {
		return 1
	}
	switch C.llama_model_rope_type(m.c) {
	case C.LLAMA_ROPE_TYPE_MROPE, C.LLAMA_ROPE_TYPE_IMROPE:
		return 4
	}
	return 1
}

// NCtxTrain returns the context length the model was trained with.
func (m *LlamaModel) NCtxTrain() int {
	if !m.Valid() {
		return 0
	}
	return int(C.llama_model_n_ctx_train(m.c))
}

// NParams returns the number of parameters.
func (m *LlamaModel) NParams() uint64 {
	if !m.Valid() {
		return 0
	}
	return uint64(C.llama_model_n_params(m.c))
}

// Size returns the total size of the weights in bytes.
func (m *LlamaModel) Size() uint64 {
	if !m.Valid() {
		return 0
	}
	return uint64(C.llama_model_size(m.c))
}

// Description returns llama.cpp's one-line description, e.g. "llama ?B Q8_0".
func (m *LlamaModel) Description() string {
	if !m.Valid() {
		return ""
	}
	return growString(func(buf *C.char, n C.size_t) C.int32_t { return C.llama_model_desc(m.c, buf, n) })
}

// ChatTemplate returns the named chat template stored in the model
// (tokenizer.chat_template when name is empty); ok is false if there is none.
func (m *LlamaModel) ChatTemplate(name string) (tmpl string, ok bool) {
	if !m.Valid() {
		return "", false
	}
	var cname *C.char
	if name != "" {
		cname = C.CString(name)
		defer C.free(unsafe.Pointer(cname))
	}
	p := C.llama_model_chat_template(m.c, cname)
	if p == nil {
		return "", false
	}
	return C.GoString(p), true
}

// Metadata returns every GGUF key/value of the model as llama.cpp prints
// them (arrays are summarised by llama.cpp).
func (m *LlamaModel) Metadata() map[string]string {
	if !m.Valid() {
		return nil
	}
	n := int(C.llama_model_meta_count(m.c))
	out := make(map[string]string, n)
	for i := 0; i < n; i++ {
		ci := C.int32_t(i)
		k := growString(func(buf *C.char, sz C.size_t) C.int32_t { return C.llama_model_meta_key_by_index(m.c, ci, buf, sz) })
		v := growString(func(buf *C.char, sz C.size_t) C.int32_t { return C.llama_model_meta_val_str_by_index(m.c, ci, buf, sz) })
		out[k] = v
	}
	return out
}

// growString calls a llama.cpp function that writes a NUL-terminated string
// into a buffer and returns the full length, growing the buffer as needed.
func growString(f func(buf *C.char, n C.size_t) C.int32_t) string {
	size := 256
	for range 4 {
		buf := (*C.char)(C.malloc(C.size_t(size)))
		n := int(f(buf, C.size_t(size)))
		if n < 0 {
			C.free(unsafe.Pointer(buf))
			return ""
		}
		if n < size {
			s := C.GoStringN(buf, C.int(n))
			C.free(unsafe.Pointer(buf))
			return s
		}
		C.free(unsafe.Pointer(buf))
		size = n + 1
	}
	return ""
}

// Token is a vocabulary id (llama_token).
type Token = int32

// VocabSize returns the number of tokens in the vocabulary.
func (m *LlamaModel) VocabSize() int {
	if !m.Valid() {
		return 0
	}
	return int(C.llama_vocab_n_tokens(m.vocab))
}

// Special token ids; -1 when the model has none (or is freed).

// BOS returns the beginning of sequence token.
func (m *LlamaModel) BOS() Token {
	if !m.Valid() {
		return -1
	}
	return Token(C.llama_vocab_bos(m.vocab))
}

// EOS returns the end of sequence token.
func (m *LlamaModel) EOS() Token {
	if !m.Valid() {
		return -1
	}
	return Token(C.llama_vocab_eos(m.vocab))
}

// EOT returns the end of turn token.
func (m *LlamaModel) EOT() Token {
	if !m.Valid() {
		return -1
	}
	return Token(C.llama_vocab_eot(m.vocab))
}

// NL returns the newline token.
func (m *LlamaModel) NL() Token {
	if !m.Valid() {
		return -1
	}
	return Token(C.llama_vocab_nl(m.vocab))
}

// PAD returns the padding token.
func (m *LlamaModel) PAD() Token {
	if !m.Valid() {
		return -1
	}
	return Token(C.llama_vocab_pad(m.vocab))
}

// AddBOS reports whether the tokenizer adds BOS when asked for special tokens.
func (m *LlamaModel) AddBOS() bool { return m.Valid() && bool(C.llama_vocab_get_add_bos(m.vocab)) }

// AddEOS reports whether the tokenizer adds EOS when asked for special tokens.
func (m *LlamaModel) AddEOS() bool { return m.Valid() && bool(C.llama_vocab_get_add_eos(m.vocab)) }

// validToken reports whether t is an id of this vocabulary.
func (m *LlamaModel) validToken(t Token) bool { return t >= 0 && int(t) < m.VocabSize() }

// IsEOG reports whether t ends generation (EOS, EOT, ...).
func (m *LlamaModel) IsEOG(t Token) bool {
	return m.validToken(t) && bool(C.llama_vocab_is_eog(m.vocab, C.llama_token(t)))
}

// IsControl reports whether t is a control token.
func (m *LlamaModel) IsControl(t Token) bool {
	return m.validToken(t) && bool(C.llama_vocab_is_control(m.vocab, C.llama_token(t)))
}

// TokenText returns the vocabulary string of t (llama_vocab_get_text).
func (m *LlamaModel) TokenText(t Token) (string, error) {
	if !m.Valid() {
		return "", ErrClosed
	}
	if !m.validToken(t) {
		return "", fmt.Errorf("token %d of a %d-token vocabulary: %w", t, m.VocabSize(), ErrInvalidArgument)
	}
	return C.GoString(C.llama_vocab_get_text(m.vocab, C.llama_token(t))), nil
}

// Tokenize converts text to tokens. addSpecial adds BOS/EOS as the model
// wants; parseSpecial matches special tokens written in the text.
func (m *LlamaModel) Tokenize(text string, addSpecial, parseSpecial bool) ([]Token, error) {
	if !m.Valid() {
		return nil, ErrClosed
	}
	if len(text) > 1<<30 {
		return nil, fmt.Errorf("text of %d bytes: %w", len(text), ErrInvalidArgument)
	}
	ctext := C.CString(text)
	defer C.free(unsafe.Pointer(ctext))
	n := len(text) + 8
	for range 2 {
		buf := make([]Token, n)
		var cerr C.vlm_cxx_err
		got := int(C.vlm_cxx_tokenize(m.vocab, ctext, C.int32_t(len(text)),
			(*C.llama_token)(unsafe.Pointer(unsafe.SliceData(buf))), C.int32_t(n), C.bool(addSpecial), C.bool(parseSpecial), &cerr))
		if err := cxxError("llama_tokenize", &cerr); err != nil {
			return nil, err
		}
		if got >= 0 {
			return buf[:got], nil
		}
		if got == int(^uint32(0)>>1)*-1-1 { // INT32_MIN: overflow
			break
		}
		n = -got
	}
	return nil, fmt.Errorf("llama_tokenize failed on %d bytes of text: %w", len(text), ErrInvalidArgument)
}

// TokenPiece returns the bytes t stands for; special tokens are rendered
// only when special is true. A piece may be part of a UTF-8 sequence.
func (m *LlamaModel) TokenPiece(t Token, special bool) ([]byte, error) {
	if !m.Valid() {
		return nil, ErrClosed
	}
	if !m.validToken(t) {
		return nil, fmt.Errorf("token %d of a %d-token vocabulary: %w", t, m.VocabSize(), ErrInvalidArgument)
	}
	var stack [64]byte
	buf := stack[:]
	for range 2 {
		cbuf := (*C.char)(C.malloc(C.size_t(len(buf))))
		var cerr C.vlm_cxx_err
		n := int(C.vlm_cxx_token_to_piece(m.vocab, C.llama_token(t), cbuf, C.int32_t(len(buf)), 0, C.bool(special), &cerr))
		if err := cxxError("llama_token_to_piece", &cerr); err != nil {
			C.free(unsafe.Pointer(cbuf))
			return nil, err
		}
		if n >= 0 {
			out := C.GoBytes(unsafe.Pointer(cbuf), C.int(n))
			C.free(unsafe.Pointer(cbuf))
			return out, nil
		}
		C.free(unsafe.Pointer(cbuf))
		buf = make([]byte, -n)
	}
	return nil, fmt.Errorf("llama_token_to_piece(%d) failed: %w", t, ErrInvalidArgument)
}

// Detokenize converts tokens to text. removeSpecial drops a leading BOS and
// trailing EOS if the model adds them; unparseSpecial renders special tokens.
func (m *LlamaModel) Detokenize(tokens []Token, removeSpecial, unparseSpecial bool) (string, error) {
	if !m.Valid() {
		return "", ErrClosed
	}
	for _, t := range tokens {
		if !m.validToken(t) {
			return "", fmt.Errorf("token %d of a %d-token vocabulary: %w", t, m.VocabSize(), ErrInvalidArgument)
		}
	}
	if len(tokens) == 0 {
		return "", nil
	}
	ctoks := C.malloc(C.size_t(len(tokens)) * C.size_t(unsafe.Sizeof(C.llama_token(0))))
	defer C.free(ctoks)
	copy(unsafe.Slice((*Token)(ctoks), len(tokens)), tokens)
	n := len(tokens)*8 + 16
	for range 2 {
		buf := (*C.char)(C.malloc(C.size_t(n)))
		got := int(C.llama_detokenize(m.vocab, (*C.llama_token)(ctoks), C.int32_t(len(tokens)), buf, C.int32_t(n),
			C.bool(removeSpecial), C.bool(unparseSpecial)))
		if got >= 0 {
			s := C.GoStringN(buf, C.int(got))
			C.free(unsafe.Pointer(buf))
			return s, nil
		}
		C.free(unsafe.Pointer(buf))
		n = -got + 1
	}
	return "", fmt.Errorf("llama_detokenize failed: %w", ErrInvalidArgument)
}

// BuiltinChatTemplates lists the template names llama_chat_apply_template knows.
func BuiltinChatTemplates() []string {
	Init()
	n := int(C.llama_chat_builtin_templates(nil, 0))
	if n <= 0 {
		return nil
	}
	arr := (**C.char)(C.malloc(C.size_t(n) * C.size_t(unsafe.Sizeof((*C.char)(nil)))))
	defer C.free(unsafe.Pointer(arr))
	n = int(C.llama_chat_builtin_templates(arr, C.size_t(n)))
	out := make([]string, 0, n)
	for _, p := range unsafe.Slice(arr, n) {
		out = append(out, C.GoString(p))
	}
	return out
}

// ChatMessage is one message for ApplyBuiltinChatTemplate.
type ChatMessage struct {
	Role    string
	Content string
}

// ApplyBuiltinChatTemplate renders messages with llama.cpp's built-in
// (non-Jinja) template named tmpl, e.g. "chatml"; addAssistant appends the
// assistant prefix. It is the fallback for models without a Jinja template.
func ApplyBuiltinChatTemplate(tmpl string, msgs []ChatMessage, addAssistant bool) (string, error) {
	Init()
	ctmpl := C.CString(tmpl)
	defer C.free(unsafe.Pointer(ctmpl))
	cmsgs := (*C.struct_llama_chat_message)(C.calloc(C.size_t(max(len(msgs), 1)), C.size_t(unsafe.Sizeof(C.struct_llama_chat_message{}))))
	if cmsgs == nil {
		return "", fmt.Errorf("out of C memory for %d chat messages: %w", len(msgs), ErrInvalidArgument)
	}
	defer C.free(unsafe.Pointer(cmsgs))
	view := unsafe.Slice(cmsgs, max(len(msgs), 1))
	total := 0
	for i, msg := range msgs {
		view[i].role = C.CString(msg.Role)
		view[i].content = C.CString(msg.Content)
		total += len(msg.Role) + len(msg.Content)
	}
	defer func() {
		for i := range msgs {
			C.free(unsafe.Pointer(view[i].role))
			C.free(unsafe.Pointer(view[i].content))
		}
	}()
	n := total*2 + 256
	for range 2 {
		buf := (*C.char)(C.malloc(C.size_t(n)))
		var cerr C.vlm_cxx_err
		got := int(C.vlm_cxx_chat_apply_template(ctmpl, cmsgs, C.size_t(len(msgs)), C.bool(addAssistant), buf, C.int32_t(n), &cerr))
		if err := cxxError("llama_chat_apply_template", &cerr); err != nil {
			C.free(unsafe.Pointer(buf))
			return "", err
		}
		if got < 0 {
			C.free(unsafe.Pointer(buf))
			return "", fmt.Errorf("llama.cpp has no built-in chat template %q (known: %s): %w",
				tmpl, strings.Join(BuiltinChatTemplates(), ", "), ErrInvalidArgument)
		}
		if got < n {
			s := C.GoStringN(buf, C.int(got))
			C.free(unsafe.Pointer(buf))
			return s, nil
		}
		C.free(unsafe.Pointer(buf))
		n = got + 1
	}
	return "", fmt.Errorf("llama_chat_apply_template: output keeps growing: %w", ErrInvalidArgument)
}
