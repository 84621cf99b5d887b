package pipeline

import (
	"context"
	"errors"
	"fmt"
	"github.com/vlm-go/vlm/internal/errkind"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/vlm-go/vlm"
	"github.com/vlm-go/vlm/engine"
	"github.com/vlm-go/vlm/isolate"
	"github.com/vlm-go/vlm/llama"
	"github.com/vlm-go/vlm/mtmd"
	"github.com/vlm-go/vlm/template"
)

// Errors of this package; the errors of llama, mtmd, sampler and template
// pass through wrapped.
var (
	// ErrInvalidInput: the input is empty or inconsistent.
	ErrInvalidInput = errkind.New("pipeline: invalid input", vlm.ErrInvalidArgument)
	// ErrInvalidOptions: an option is out of range.
	ErrInvalidOptions = errkind.New("pipeline: invalid options", vlm.ErrInvalidArgument)
	// ErrClosed: the pipeline or session was closed.
	ErrClosed = vlm.ErrClosed
	// ErrOverloaded: Options.MaxWaiting requests are already waiting.
	ErrOverloaded = engine.ErrOverloaded
	// ErrImageMemoryBusy: an image waited for its bytes of the image memory
	// (Options.ImageMemory) until the request's deadline; retry later (a
	// server answers 429).
	ErrImageMemoryBusy = mtmd.ErrBudgetBusy
	// ErrImageTooLarge: an image, or a request's images together, are over
	// a limit (Options.ImageLimits, Options.MaxImageBytes); the error is an
	// *mtmd.ImageMemoryError naming the figures when memory is the limit.
	ErrImageTooLarge = mtmd.ErrImageTooLarge
	// ErrShuttingDown: Shutdown was called; the pipeline answers the
	// requests it has and takes no more (a server answers 503). It wraps
	// ErrClosed.
	ErrShuttingDown = engine.ErrShuttingDown
)

// Options configure New. The zero value is sensible: every layer on the GPU
// when one is loaded, else the CPU (vlm.DefaultThreads() threads); a
// 4096-token context.
type Options struct {
	// GPULayers is how many layers go to the GPU: 0 means all when a GPU
	// backend is loaded (none otherwise), -1 all, n > 0 that many.
	GPULayers int
	// NoGPU keeps the model and the projector on the CPU.
	NoGPU bool
	// MainGPU is the GPU used when the model is not split.
	MainGPU int
	// Threads for decoding and encoding; 0 means vlm.DefaultThreads(): the
	// physical cores less one, because ggml's spinning threads collapse when
	// another program takes a core (see DefaultThreads). Set it to use all.
	Threads int
	// SequenceLength bounds one request — its prompt, images included,
	// and its answer — in positions; 0 means 4096 (capped at the model's
	// training length).
	SequenceLength int
	// BatchSize is the most tokens evaluated in one step; 0 means 512. It
	// must hold an image's tokens for projectors with non-causal attention.
	BatchSize int
	// Sequences is how many requests — Run, Stream, RunBatch and session
	// turns, from any number of goroutines — are decoded together: the
	// sequences of the pipeline's one batched context (package engine),
	// whose KV cache holds Sequences × SequenceLength positions. More requests
	// wait for a sequence. 0 means 1.
	Sequences int
	// MaxWaiting bounds the requests waiting for a sequence; beyond it a
	// call fails at once with ErrOverloaded (a server answers 429 or 503).
	// 0 means 64 or 16 × Sequences, whichever is more; -1 means no bound.
	MaxWaiting int
	// Progress, if set, is called with values from 0 to 1 while the model
	// loads; returning false cancels the load.
	Progress func(progress float32) bool
	// QuantizeQ8_0 converts the model's weights to Q8_0 (8-bit) once, caches
	// the result (QuantizedCacheDir) and loads that: about half the memory
	// of F16.
	QuantizeQ8_0 bool
	// QuantizedCacheDir is where quantized models are kept; empty means
	// the user cache dir's vlm/quantized.
	QuantizedCacheDir string
	// ChatTemplate overrides the model's chat template: a built-in name of
	// package template (e.g. "chatml"), a name llama.cpp knows for models
	// without a Jinja template, or a Jinja source.
	ChatTemplate string
	// Isolated first tries the model and projector in a child process
	// (package isolate: load, decode, encode, render the template), so
	// that a file that would crash llama.cpp fails New with
	// isolate.ErrCrashed instead of ending the program. The program must
	// call isolate.Main() first thing in main (and in TestMain).
	Isolated bool
	// ImageLimits bound the images decoded from files and bytes. Their
	// ReducePixels 0 means the projector's ImagePixels: a larger picture is
	// scaled down to it as it is decoded (-1 keeps every pixel).
	ImageLimits mtmd.Limits
	// ImageMemory bounds the bytes that decoding images holds at once,
	// across all requests: each image's mtmd.ImageInfo.DecodeBytes (what Go's
	// decoder allocates for it, known from its header before decoding) is
	// taken from it for the time of the decode, and an image that does not
	// fit waits until the request's context is done (its deadline: an error
	// matching ErrImageMemoryBusy). 0 means one budget shared by every
	// pipeline of the process that leaves it 0, of DefaultImageMemory()
	// bytes; -1 means no bound.
	ImageMemory int64
	// MaxImageBytes bounds one request's images: the largest one's decoding
	// plus all of them once reduced must fit, else the request fails before
	// anything is decoded with an *mtmd.ImageMemoryError (ErrImageTooLarge).
	// 0 means DefaultMaxImageBytes, or ImageMemory when that is less; -1
	// means no bound but ImageMemory.
	MaxImageBytes int64
	// ImageCacheBytes bounds the pipeline's image cache: every image it
	// has prepared (the chunks mtmd makes of it and the encoder's output)
	// is kept there, least recently used dropped first, so asking again
	// about a picture — in Run, Stream, RunBatch or a session — neither
	// preprocesses nor encodes it. Pictures sent as files or bytes are
	// also kept decoded, by a hash of their bytes, in another quarter of
	// this bound. 0 means mtmd.DefaultImageCacheBytes; -1 turns both off.
	ImageCacheBytes int64
	// Process says where the model runs: SameProcess (the default) or
	// ChildProcess, a supervised child process of the program that a crash
	// in llama.cpp cannot take the program down with (see ChildProcess).
	// It is independent of Isolated, which only trials the files first.
	Process Process
	// Supervisor configures the supervision of a ChildProcess pipeline.
	Supervisor Supervisor
	// BatchInvariant makes a greedy answer (temperature 0) the same token
	// for token whether its request decodes alone or beside others, on the
	// CPU: it turns flash attention on there. ggml's CPU attention without
	// flash attention sums each softmax row and each attention-weighted
	// value over every cell of the shared KV cache, masked or not, in SIMD
	// groups whose borders depend on where the sequence's cells sit, so the
	// last bits — and, after tens of tokens, a greedy choice between close
	// candidates — depend on the other sequences (6 of 8 answers of 128
	// tokens differed on SmolVLM-256M shapes; 0 with BatchInvariant). It is
	// not the default yet: with pictures and prefixes shared between
	// concurrent requests, answers can still differ (the flash kernel
	// visits a sequence's cells in cell order, which prefix sharing can
	// make differ from position order). Measured with SmolVLM-256M shapes,
	// Q8_0, 2 threads: prefill 1.5 % slower, one stream's decode within
	// noise, eight streams together 1.24× faster. On a GPU llama.cpp
	// decides either way.
	BatchInvariant bool
}

func (o Options) withDefaults() (Options, error) {
	switch {
	case o.Process != SameProcess && o.Process != ChildProcess:
		return o, fmt.Errorf("Process %v: %w", o.Process, ErrInvalidOptions)
	case o.GPULayers < -1, o.MainGPU < 0, o.Threads < 0, o.SequenceLength < 0, o.BatchSize < 0, o.Sequences < 0, o.ImageCacheBytes < -1, o.MaxWaiting < -1:
		return o, fmt.Errorf("negative option in %+v: %w", o, ErrInvalidOptions)
	}
	if o.Threads == 0 {
		o.Threads = vlm.DefaultThreads()
	}
	if o.SequenceLength == 0 {
		o.SequenceLength = llama.DefaultContextSize
	}
	if o.BatchSize == 0 {
		o.BatchSize = 512
	}
	if o.Sequences == 0 {
		o.Sequences = 1
	}
	if o.ImageMemory < -1 || o.MaxImageBytes < -1 || o.ImageLimits.ReducePixels < -1 {
		return o, fmt.Errorf("ImageMemory %d, MaxImageBytes %d, ImageLimits.ReducePixels %d (-1: no bound, 0: default): %w",
			o.ImageMemory, o.MaxImageBytes, o.ImageLimits.ReducePixels, ErrInvalidOptions)
	}
	return o, nil
}

// Pipeline answers image-text-to-text requests with one model and projector.
// It is safe for concurrent use: calls from many goroutines are batched in
// one context (Options.Sequences at a time), and a new prompt starts from
// the longest prefix any sequence holds (the system prompt, the same
// picture, an earlier turn of the same chat).
type Pipeline struct {
	opts      Options
	model     *llama.Model
	proj      *mtmd.Projector
	tmpl      *template.Template // nil when builtinTmpl is used
	builtin   string             // llama.cpp built-in template name, for models without Jinja
	bos, eos  string
	addBOS    bool
	cache     *mtmd.ImageCache // nil when off
	decoded   *decodedCache    // nil when the image cache is off
	gpu       bool             // the model and projector run on a GPU
	modelPath string

	limits        mtmd.Limits        // ImageLimits with ReducePixels set
	budget        *mtmd.MemoryBudget // image memory; nil: no bound
	maxImageBytes int64              // per request; 0: no bound

	eng *engine.Engine

	sup      *supervisor // the child process, in ChildProcess mode (then model, proj, eng, cache are nil)
	marker   string      // the projector's image marker
	draining atomic.Bool // Shutdown was called

	mu     sync.Mutex
	closed bool
}

// New loads the model at modelPath and the projector at projectorPath.
func New(ctx context.Context, modelPath, projectorPath string, opts Options) (*Pipeline, error) {
	opts, err := opts.withDefaults()
	if err != nil {
		return nil, err
	}
	if opts.Process == ChildProcess {
		return newChildPipeline(ctx, modelPath, projectorPath, opts)
	}
	path := modelPath
	if opts.QuantizeQ8_0 {
		if path, err = QuantizedModel(ctx, modelPath, opts.QuantizedCacheDir, opts.Threads); err != nil {
			return nil, err
		}
	}
	gpu := !opts.NoGPU && vlm.HasGPU()
	layers := 0
	if gpu {
		layers = opts.GPULayers
		if layers == 0 {
			layers = -1
		}
	}
	if opts.Isolated {
		if err := isolate.Check(ctx, path, projectorPath, isolate.Options{GPULayers: layers, NoGPU: !gpu}); err != nil {
			return nil, fmt.Errorf("pipeline: %w", err)
		}
	}
	model, err := llama.Load(ctx, path, llama.LoadOptions{GPULayers: layers, NoGPU: !gpu, MainGPU: opts.MainGPU, Progress: opts.Progress})
	if err != nil {
		return nil, err
	}
	p := &Pipeline{opts: opts, model: model, modelPath: path, gpu: gpu}
	if opts.ImageCacheBytes >= 0 {
		p.cache = mtmd.NewImageCache(opts.ImageCacheBytes)
		p.decoded = newDecodedCache(p.cache.Stats().MaxBytes / 4)
	}
	ok := false
	defer func() {
		if !ok {
			p.Close()
		}
	}()
	// The encoder runs beside the decode loop. Where it can run at the
	// lowest CPU priority (Linux) it gets every thread: alone it has the
	// whole CPU; while it runs the engine decodes with half the threads,
	// which take their cores from it at once (see engine.Options.Threads).
	// Elsewhere, with several sequences, it takes half the threads, and the
	// engine decodes with the other half while it runs (ggml's spinning
	// threads collapse when oversubscribed).
	encThreads := opts.Threads
	idle := mtmd.IdlePriorityWorks()
	if !idle && opts.Sequences > 1 && opts.Threads > 1 {
		encThreads = (opts.Threads + 1) / 2
	}
	if p.proj, err = mtmd.Load(ctx, projectorPath, model, mtmd.Options{NoGPU: !gpu, Threads: encThreads, IdlePriority: idle}); err != nil {
		return nil, err
	}
	p.marker = p.proj.Marker()
	p.setupImageMemory(p.proj.ImagePixels())
	if err := p.setupTemplate(); err != nil {
		return nil, err
	}
	p.eng, err = engine.New(model, p.proj, engine.Options{
		Sequences: opts.Sequences, SequenceLength: opts.SequenceLength, BatchSize: opts.BatchSize,
		Threads: opts.Threads, FlashAttn: p.flashAttn(), MaxWaiting: opts.MaxWaiting,
	})
	if err != nil {
		return nil, err
	}
	ok = true
	return p, nil
}

// flashAttn is the pipeline's flash-attention setting.
//
// On the CPU flash attention is on only with Options.BatchInvariant (see
// there); it decodes several streams faster (it skips the other sequences'
// cells), at a cost for long prompts alone: measured earlier on a loaded
// machine with SmolVLM-256M shapes, 2 threads, 18
// tokens after 1134 in the cache 116–121 ms with it, 77 ms without;
// filling 1134 tokens 5.0–5.2 s vs 3.5–3.6 s (`vlm-bench -prompt 1152
// -flash on` vs `-flash off`). On a GPU llama.cpp decides.
func (p *Pipeline) flashAttn() llama.FlashAttention {
	if !p.gpu {
		if p.opts.BatchInvariant {
			return llama.FlashAttentionOn
		}
		return llama.FlashAttentionOff
	}
	return llama.FlashAttentionAuto
}

// setupTemplate picks the chat template: the caller's, else the model's,
// else llama.cpp's built-in one the caller named.
func (p *Pipeline) setupTemplate() error {
	v := p.model.Vocab()
	if t := v.BOS(); t >= 0 {
		p.bos, _ = v.Text(t)
	}
	if t := v.EOS(); t >= 0 {
		p.eos, _ = v.Text(t)
	}
	p.addBOS = v.AddBOS()
	embedded, _ := p.model.ChatTemplate()
	tmpl, err := template.Resolve(p.opts.ChatTemplate, embedded)
	if err == nil {
		p.tmpl = tmpl
		return nil
	}
	if p.opts.ChatTemplate != "" && (errors.Is(err, template.ErrUnknownTemplate) || errors.Is(err, template.ErrNoTemplate)) {
		for _, name := range vlm.BuiltinChatTemplates() {
			if name == p.opts.ChatTemplate {
				p.builtin = name
				return nil
			}
		}
	}
	if errors.Is(err, template.ErrNoTemplate) {
		return fmt.Errorf("pipeline: %s has no chat template; set Options.ChatTemplate to a template name (%s, or one of llama.cpp's: %s) or a Jinja source: %w",
			p.model.Path(), strings.Join(template.BuiltinNames(), ", "), strings.Join(vlm.BuiltinChatTemplates(), ", "), err)
	}
	return err
}

// Close frees the model, projector and context (idempotent). Calls in
// progress on other goroutines end with ErrClosed.
func (p *Pipeline) Close() error {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return nil
	}
	p.closed = true
	p.mu.Unlock()
	if p.sup != nil {
		p.sup.close()
	}
	if p.eng != nil {
		p.eng.Close()
	}
	if p.proj != nil {
		p.proj.Close()
	}
	if p.model != nil {
		p.model.Close()
	}
	return nil
}

// Shutdown stops the pipeline gracefully: new calls (Run, Stream,
// RunBatch, session turns) fail with ErrShuttingDown, those already
// answering run to their end, and then the pipeline is closed as by
// Close. If ctx ends first, the calls left end with ErrClosed and
// Shutdown returns ctx's error. Calls that had not reached the engine
// yet (still decoding their images) fail with ErrShuttingDown.
func (p *Pipeline) Shutdown(ctx context.Context) error {
	var err error
	p.draining.Store(true)
	if p.sup != nil && !p.isClosed() {
		err = p.sup.shutdown(ctx)
	}
	if p.eng != nil && !p.isClosed() {
		err = p.eng.Shutdown(ctx)
	}
	if cerr := p.Close(); err == nil {
		err = cerr
	}
	return err
}

// Model returns the loaded text model; nil in ChildProcess mode.
func (p *Pipeline) Model() *llama.Model { return p.model }

// ImageCacheStats returns the counters of the pipeline's image cache (zero
// when Options.ImageCacheBytes turned it off).
func (p *Pipeline) ImageCacheStats() mtmd.CacheStats {
	if p.sup != nil {
		return p.sup.cacheStats()
	}
	if p.cache == nil {
		return mtmd.CacheStats{}
	}
	return p.cache.Stats()
}

// Projector returns the loaded vision projector; nil in ChildProcess mode.
func (p *Pipeline) Projector() *mtmd.Projector { return p.proj }

// EngineStats returns the counters of the pipeline's batching engine:
// requests answered, waiting and running, decode steps, prompt entries
// reused from the KV cache. In ChildProcess mode it asks the child (a
// round trip), and the counters include those of the children before it.
func (p *Pipeline) EngineStats() engine.Stats {
	if p.sup != nil {
		return p.sup.engineStats()
	}
	return p.eng.Stats()
}

// Overloaded reports whether Options.MaxWaiting requests are waiting for
// a sequence now, so that one more would fail with ErrOverloaded. It is a
// cheap read for a server that refuses work before preparing it (images,
// grammar, tokens); the engine still decides when a request is submitted.
func (p *Pipeline) Overloaded() bool {
	if p.sup != nil {
		return p.sup.overloaded()
	}
	o := p.eng.Options()
	return o.MaxWaiting >= 0 && p.eng.Stats().Waiting >= o.MaxWaiting
}

// Capacity returns how many requests the pipeline holds at once: Sequences
// being answered plus MaxWaiting waiting (its default resolved); -1 when
// MaxWaiting is -1 (no bound).
func (p *Pipeline) Capacity() int {
	var o engine.Options
	if p.sup != nil {
		o = p.sup.hello.Engine
	} else {
		o = p.eng.Options()
	}
	if o.MaxWaiting < 0 {
		return -1
	}
	return o.Sequences + o.MaxWaiting
}

func (p *Pipeline) isClosed() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.closed
}

// render lays out msgs with the chat template: the exact text transformers
// would render (full) and the prompt for mtmd with one marker per image.
func (p *Pipeline) render(ctx context.Context, msgs []template.Message, vars map[string]any) (full, prompt string, err error) {
	if len(msgs) == 1 && msgs[0].Role == rawRole {
		return msgs[0].Text, msgs[0].Text, nil // Input.Prompt
	}
	if p.builtin != "" {
		cm := make([]vlm.ChatMessage, len(msgs))
		for i, m := range msgs {
			cm[i] = vlm.ChatMessage{Role: m.Role, Content: m.Text}
			if !m.IsString() {
				var b strings.Builder
				for _, part := range m.Content {
					switch part.Type {
					case template.TypeImage:
						b.WriteString(p.marker)
					case template.TypeText:
						b.WriteString(part.Text)
					}
				}
				cm[i].Content = b.String()
			}
		}
		s, err := vlm.ApplyBuiltinChatTemplate(p.builtin, cm, true)
		return s, s, err
	}
	o := template.Options{AddGenerationPrompt: true, BOSToken: p.bos, EOSToken: p.eos, Marker: p.marker, Context: ctx, Vars: vars}
	if full, err = p.tmpl.Render(msgs, o); err != nil {
		return "", "", err
	}
	prompt, err = p.tmpl.Prompt(msgs, o)
	return full, prompt, err
}
