package llama

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/vlm-go/vlm"
	"github.com/vlm-go/vlm/gguf"
	"github.com/vlm-go/vlm/internal/ggufcheck"
	"github.com/vlm-go/vlm/internal/llamaaccess"
)

// LoadOptions configure Load. The zero value loads everything on the CPU
// with mmap.
type LoadOptions struct {
	// GPULayers is how many layers go to the GPU when a GPU backend is
	// loaded: 0 (the default) and -1 mean all of them, n > 0 the first n.
	// It is the convention of pipeline.Options too.
	GPULayers int
	// NoGPU keeps every layer on the CPU, also when a GPU backend is loaded.
	NoGPU bool
	// MainGPU is the index of the GPU used when the model is not split.
	MainGPU int
	// NoMmap reads the file into memory instead of mapping it.
	NoMmap bool
	// Mlock locks the weights in RAM.
	Mlock bool
	// VocabOnly loads the vocabulary and metadata but no weights: enough to
	// tokenize and to read the chat template. Such a model cannot make a
	// context or load a projector (ErrVocabOnly); see Model.VocabOnly and
	// Info for what it reports.
	VocabOnly bool
	// Progress, if set, is called with values from 0 to 1 while weights
	// load; returning false cancels the load with ErrCancelled.
	Progress func(progress float32) bool
}

// nativeLayers is GPULayers as the binding takes it (0 none, -1 all).
func (o LoadOptions) nativeLayers() int {
	switch {
	case o.NoGPU:
		return 0
	case o.GPULayers <= 0:
		return -1
	}
	return o.GPULayers
}

func (o LoadOptions) validate() error {
	if o.GPULayers < -1 {
		return fmt.Errorf("GPULayers %d (want -1 for all, or ≥ 0): %w", o.GPULayers, ErrInvalidArgument)
	}
	if o.MainGPU < 0 {
		return fmt.Errorf("MainGPU %d: %w", o.MainGPU, ErrInvalidArgument)
	}
	return nil
}

// Model is a loaded text model. It is safe for concurrent use.
type Model struct {
	mu      sync.RWMutex // held for reading by every call, for writing by free
	c       *vlm.LlamaModel
	closed  bool         // Close was called
	refs    atomic.Int32 // open children (contexts, projectors, grammar samplers)
	path    string
	file    *gguf.File
	info    Info // read once at load; immutable
	cleanup runtime.Cleanup
}

// Load checks the GGUF file at path and loads it. ctx cancels the load
// while weights are read.
func Load(ctx context.Context, path string, opts LoadOptions) (*Model, error) {
	if err := opts.validate(); err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("loading %s: %w (%w)", path, ErrCancelled, err)
	}
	f, err := CheckFile(path)
	if err != nil {
		return nil, err
	}
	progress := func(p float32) bool {
		if ctx.Err() != nil {
			return false
		}
		if opts.Progress != nil {
			return opts.Progress(p)
		}
		return true
	}
	c, err := vlm.LoadModel(path, vlm.ModelParams{
		GPULayers: opts.nativeLayers(), MainGPU: opts.MainGPU, NoMmap: opts.NoMmap,
		Mlock: opts.Mlock, VocabOnly: opts.VocabOnly, Progress: progress,
	})
	if err != nil {
		if cerr := ctx.Err(); cerr != nil && errors.Is(err, vlm.ErrCancelled) {
			return nil, fmt.Errorf("%w (%w)", err, cerr)
		}
		return nil, err
	}
	warnUnvalidated(f.Architecture(), path)
	m := &Model{c: c, path: path, file: f}
	m.info = Info{
		Architecture: f.Architecture(), NParams: c.NParams(), Size: c.Size(),
		NVocab: c.VocabSize(), VocabOnly: opts.VocabOnly,
	}
	// A vocab-only model has no layers: llama.cpp leaves every
	// hyperparameter past general.name unread (zero), and llama_model_n_head
	// and llama_model_n_head_kv abort the process (llama_hparams::n_head(0)
	// with n_layer 0). Only a full model is asked for them.
	if !opts.VocabOnly {
		m.info.Description = c.Description()
		m.info.NCtxTrain, m.info.NEmbd, m.info.NEmbdInput = c.NCtxTrain(), c.NEmbd(), c.NEmbdInput()
		m.info.NLayer, m.info.NHead, m.info.NHeadKV = c.NLayer(), c.NHead(), c.NHeadKV()
		m.info.PositionsPerToken = c.PositionsPerToken()
	}
	m.cleanup = runtime.AddCleanup(m, func(c *vlm.LlamaModel) { c.Free() }, c)
	return m, nil
}

// warned holds the architectures warnUnvalidated has warned about.
var warned sync.Map

// warnUnvalidated logs once per architecture that vlm checks only the keys
// and tokenizer of such files (gguf.FullyValidatedArchitectures lists the
// others): llama.cpp loads them, but a malformed one can still crash it.
func warnUnvalidated(arch, path string) {
	if slices.Contains(gguf.FullyValidatedArchitectures(), arch) {
		return
	}
	if _, seen := warned.LoadOrStore(arch, true); seen {
		return
	}
	vlm.Log(slog.LevelWarn, "vlm validates the metadata and tokenizer of this architecture, not its tensors: a malformed file can still crash llama.cpp",
		"architecture", arch, "path", path, "fully_validated", strings.Join(gguf.FullyValidatedArchitectures(), ","))
}

// CheckFile reads the GGUF metadata at path and checks it for what would
// make llama.cpp abort, without loading weights. Load calls it first.
func CheckFile(path string) (*gguf.File, error) {
	f, err := ggufcheck.Open(path, gguf.ValidateModel, ErrNotFound, ErrInvalidModel)
	if err != nil {
		return nil, err
	}
	if arch := f.Architecture(); !supportedArchitectures[arch] {
		return nil, fmt.Errorf("%s: %w: %q", path, ErrUnsupportedArchitecture, arch)
	}
	return f, nil
}

// use runs f with the native model, unless the model is closed.
func (m *Model) use(f func(c *vlm.LlamaModel) error) error {
	if m == nil {
		return ErrClosed
	}
	m.mu.RLock()
	defer m.mu.RUnlock()
	if m.closed || m.c == nil {
		return ErrClosed
	}
	return f(m.c)
}

func init() {
	llamaaccess.ModelNative = func(m any, f func(*vlm.LlamaModel) error) error { return m.(*Model).use(f) }
	llamaaccess.Acquire = func(m any) error { return m.(*Model).acquire() }
	llamaaccess.Release = func(m any) { m.(*Model).release() }
	llamaaccess.ContextNative = func(x any, f func(*vlm.LlamaContext) error) error { return x.(*Context).do(f) }
}

// acquire records a child (a context or projector) that uses the model; the
// model is freed only after every child has called release. It fails with
// ErrClosed on a closed model.
func (m *Model) acquire() error {
	if m == nil {
		return ErrClosed
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed || m.c == nil {
		return ErrClosed
	}
	m.refs.Add(1)
	return nil
}

// release undoes one acquire. It takes the model's write lock only when
// the last child goes (the model may then be freed): a child closed while
// other goroutines read the model (a long tokenization) does not wait for
// them, nor stop new readers meanwhile — a grammar sampler is closed on
// a batching engine's decode loop.
func (m *Model) release() {
	if m.refs.Add(-1) > 0 {
		return
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	m.freeIfUnusedLocked()
}

func (m *Model) freeIfUnusedLocked() {
	if m.closed && m.refs.Load() <= 0 && m.c != nil {
		m.cleanup.Stop()
		m.c.Free()
		m.c = nil
	}
}

// Close frees the model, or, while contexts or projectors made from it are
// open, marks it closed and frees it when the last of them closes. It is
// idempotent; later calls on the model return ErrClosed.
func (m *Model) Close() error {
	if m == nil {
		return nil
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	m.closed = true
	m.freeIfUnusedLocked()
	return nil
}

// VocabOnly reports whether the model was loaded with LoadOptions.VocabOnly:
// it can tokenize and detokenize and report its metadata and chat template,
// but has no weights, so NewContext and mtmd.Load fail with ErrVocabOnly and
// the Info fields read from the weights' hyperparameters are zero.
func (m *Model) VocabOnly() bool { return m.info.VocabOnly }

// Path returns the file the model was loaded from.
func (m *Model) Path() string { return m.path }

// File returns the model file's GGUF metadata: every key/value and tensor.
func (m *Model) File() *gguf.File { return m.file }

// Architecture returns general.architecture, e.g. "llama".
func (m *Model) Architecture() string { return m.file.Architecture() }

// ChatTemplate returns the model's embedded Jinja chat template
// (tokenizer.chat_template); ok is false when it has none.
func (m *Model) ChatTemplate() (tmpl string, ok bool) {
	tmpl = m.file.ChatTemplate()
	return tmpl, tmpl != ""
}

// Info is a summary of a loaded model.
//
// For a model loaded with VocabOnly, the fields marked (*) are zero:
// llama.cpp does not read the hyperparameters without the weights. NParams
// and Size then count the weights in the file, which are not loaded; File
// has every GGUF key (e.g. "llama.context_length") for callers that need a
// value anyway.
type Info struct {
	Architecture string // general.architecture
	Description  string // llama.cpp's one-line description (*)
	NParams      uint64 // number of parameters
	Size         uint64 // bytes of weights
	NCtxTrain    int    // training context length (*)
	NEmbd        int    // embedding width (*)
	NEmbdInput   int    // input embedding width (what a projector must produce) (*)
	NLayer       int    // layers (*)
	NHead        int    // attention heads (*)
	NHeadKV      int    // key/value heads (*)
	NVocab       int    // vocabulary size
	// PositionsPerToken is 4 for M-RoPE models (Qwen2-VL style), else 1 (*).
	PositionsPerToken int
	// VocabOnly: loaded with LoadOptions.VocabOnly (vocabulary and metadata,
	// no weights).
	VocabOnly bool
}

// Info returns the model's summary (read at load); after Close it returns
// ErrClosed.
func (m *Model) Info() (Info, error) {
	if err := m.use(func(*vlm.LlamaModel) error { return nil }); err != nil {
		return Info{}, err
	}
	return m.info, nil
}

// Metadata returns the GGUF key/values as llama.cpp renders them (arrays are
// summarised). File gives typed access to every value.
func (m *Model) Metadata() (map[string]string, error) {
	var md map[string]string
	err := m.use(func(c *vlm.LlamaModel) error { md = c.Metadata(); return nil })
	return md, err
}

// Vocab returns the model's vocabulary.
func (m *Model) Vocab() *Vocab { return &Vocab{m: m} }
