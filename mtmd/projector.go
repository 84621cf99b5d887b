package mtmd

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
	"github.com/vlm-go/vlm/llama"
)

// Options configure Load. The zero value runs the encoder on the CPU with
// mtmd's default thread count.
type Options struct {
	// NoGPU keeps the vision encoder on the CPU; by default it runs on the
	// GPU when a GPU backend is loaded (as llama.LoadOptions.NoGPU).
	NoGPU bool
	// Threads for the encoder; 0 means vlm.DefaultThreads() (physical cores less one).
	Threads int
	// ImageMinTokens and ImageMaxTokens bound the tokens per image for
	// dynamic-resolution projectors (e.g. Qwen2-VL); 0 keeps the file's.
	ImageMinTokens, ImageMaxTokens int
	// Warmup runs one encode at load time so the first image is not slower.
	Warmup bool
	// Marker is the text that stands for an image in prompts; empty means
	// mtmd's default "<__media__>".
	Marker string
	// IdlePriority encodes on the CPU at the lowest CPU priority (Linux
	// SCHED_IDLE, see IdlePriorityWorks): any other thread of the process
	// that wants a core — a decode, a prefill — takes it from the encoder
	// at once, and the encoder uses every core nothing else wants. Give it
	// all the threads then. Ignored where the encoder runs on a GPU.
	IdlePriority bool
}

// IdlePriorityWorks reports whether Options.IdlePriority takes effect on
// this system: Linux, where a thread may lower itself to SCHED_IDLE.
// Elsewhere encodes run at normal priority, and an encoder beside a
// decoding engine should get only a share of the cores.
func IdlePriorityWorks() bool { return vlm.IdlePriorityWorks() }

// Projector is a vision projector loaded for one text model. Its methods
// are safe for concurrent use; encodes run one at a time.
type Projector struct {
	model  *llama.Model
	info   *gguf.Projector
	path   string
	marker string
	nEmbd  int // the model's input embedding width
	// nonCausal and mrope are read once at load, so that evaluating an
	// image never waits for the projector's lock (held by an encode).
	nonCausal, mrope bool
	threads          int           // the encoder's threads
	idle             bool          // encodes run at the lowest CPU priority
	maxTok           int           // Options.ImageMaxTokens
	id               uint64        // distinct for every loaded projector (ImageCache keys)
	lock             chan struct{} // held (one element) by a native call or Close: serialises them; a ctx can stop the wait
	closed           atomic.Bool   // set by Close before it frees: checked without mu
	c                *vlm.MtmdContext
	cleanup          runtime.Cleanup
}

// Load checks the projector file at path, checks that it fits model, and
// loads it. The projector keeps the model alive until it is closed.
func Load(ctx context.Context, path string, model *llama.Model, opts Options) (*Projector, error) {
	if opts.Threads < 0 || opts.ImageMinTokens < 0 || opts.ImageMaxTokens < 0 {
		return nil, fmt.Errorf("negative option in %+v: %w", opts, ErrInvalidArgument)
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("%w (%w)", ErrCancelled, err)
	}
	info, err := CheckFile(path)
	if err != nil {
		return nil, err
	}
	minfo, err := model.Info()
	if err != nil {
		return nil, err
	}
	if minfo.VocabOnly {
		return nil, fmt.Errorf("projector %s: model %s: %w; load it without VocabOnly", path, model.Path(), llama.ErrVocabOnly)
	}
	if err := info.CheckInputWidth(minfo.NEmbdInput); err != nil {
		return nil, fmt.Errorf("%s with the model %s: %w", path, model.Path(), err)
	}
	if err := checkImageTokens(info.Type, model); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if missing := missingFrameTokens(info.Type, model); len(missing) > 0 {
		vlm.Log(slog.LevelWarn, "mtmd: the projector's family frames each image with tokens the model lacks: it may belong to another model (answers would be poor)",
			"projector", path, "type", info.Type, "model", model.Path(), "missing", strings.Join(missing, " "))
	}
	if !slices.Contains(gguf.FullyValidatedProjectorTypes(), info.Type) {
		if _, seen := warnedTypes.LoadOrStore(info.Type, true); !seen {
			vlm.Log(slog.LevelWarn, "mtmd: vlm validates the keys of this projector type, not its tensors: a malformed file can still crash mtmd",
				"type", info.Type, "projector", path, "fully_validated", strings.Join(gguf.FullyValidatedProjectorTypes(), ","))
		}
	}
	if opts.Threads == 0 {
		opts.Threads = vlm.DefaultThreads()
	}
	marker := opts.Marker
	if marker == "" {
		marker = vlm.MediaMarker()
	}
	if err := llamaaccess.Acquire(model); err != nil {
		return nil, err
	}
	idle := opts.IdlePriority && !(!opts.NoGPU && vlm.HasGPU()) && vlm.IdlePriorityWorks()
	var c *vlm.MtmdContext
	err = llamaaccess.ModelNative(model, func(m *vlm.LlamaModel) (err error) {
		c, err = vlm.LoadProjector(path, m, vlm.ProjectorParams{
			UseGPU: !opts.NoGPU && vlm.HasGPU(), Threads: opts.Threads, ImageMinTokens: opts.ImageMinTokens,
			ImageMaxTokens: opts.ImageMaxTokens, Warmup: opts.Warmup, Marker: opts.Marker,
			IdlePriority: idle,
		})
		return err
	})
	if err != nil {
		llamaaccess.Release(model)
		// The error carries mtmd's logged cause; only a width mismatch is
		// ErrProjectorMismatch (vlm derives the width for some projector
		// types only, so mtmd is the one to tell).
		if errors.Is(err, vlm.ErrLoad) && strings.Contains(err.Error(), "mismatch between text model") {
			return nil, fmt.Errorf("%w: %w", err, ErrProjectorMismatch)
		}
		if errors.Is(err, vlm.ErrLoad) {
			return nil, fmt.Errorf("%w: %w", err, ErrInvalidProjector)
		}
		return nil, err
	}
	p := &Projector{model: model, info: info, path: path, marker: marker, c: c, nEmbd: minfo.NEmbdInput, id: projectorIDs.Add(1), lock: make(chan struct{}, 1), threads: opts.Threads, idle: idle, maxTok: opts.ImageMaxTokens,
		nonCausal: c.UseNonCausal(), mrope: c.UseMRoPE()}
	p.cleanup = runtime.AddCleanup(p, func(c *vlm.MtmdContext) { c.Free(); llamaaccess.Release(model) }, c)
	return p, nil
}

// projectorIDs numbers loaded projectors.
var projectorIDs atomic.Uint64

// imageTokens are the vocabulary entries mtmd looks up by text for each
// projector type to put around images; a missing one becomes token -1 and
// every image then fails to decode.
var imageTokens = map[string][]string{
	"idefics3": {"\n\n", "<fake_token_around_image>", "<global-img>", "\n"},
	"minicpmv": {"<image>", "</image>", "<slice>", "</slice>", "\n"},
	"llama4":   {"<|image|>", "<|tile_x_separator|>", "<|tile_y_separator|>"},
}

// frameTokens are the texts mtmd puts before and after each image for a
// projector type (img_beg/img_end in mtmd.cpp). A model of the projector's
// family has each as one special token; a model of another family reads them
// as plain text, and the projector most likely does not belong to it.
var frameTokens = map[string][]string{
	"gemma3":           {"<start_of_image>", "<end_of_image>"},
	"pixtral":          {"[IMG_END]"},
	"qwen2vl_merger":   {"<|vision_start|>", "<|vision_end|>"},
	"qwen2.5vl_merger": {"<|vision_start|>", "<|vision_end|>"},
	"qwen3vl_merger":   {"<|vision_start|>", "<|vision_end|>"},
	"llama4":           {"<|image_start|>", "<|image_end|>"},
	"internvl":         {"<img>", "</img>"},
	"lightonocr":       {"<|im_start|>", "<|im_end|>"},
	"lfm2":             {"<|image_start|>", "<|image_end|>"},
	"glm4v":            {"<|begin_of_image|>", "<|end_of_image|>"},
}

// missingFrameTokens returns the frame tokens of the projector type that the
// model's vocabulary does not have as single tokens.
func missingFrameTokens(projType string, model *llama.Model) []string {
	var missing []string
	for _, text := range frameTokens[projType] {
		toks, err := model.Vocab().Tokenize(text, false, true)
		if err != nil || len(toks) != 1 {
			missing = append(missing, fmt.Sprintf("%q", text))
		}
	}
	return missing
}

// checkImageTokens reports the image tokens of the projector type that the
// model's vocabulary lacks, the way mtmd finds them (by rendered piece).
func checkImageTokens(projType string, model *llama.Model) error {
	want := imageTokens[projType]
	if len(want) == 0 {
		return nil
	}
	missing := map[string]bool{}
	for _, w := range want {
		missing[w] = true
	}
	v := model.Vocab()
	for i := 0; i < v.Size() && len(missing) > 0; i++ {
		piece, err := v.Piece(llama.Token(i), true)
		if err != nil {
			return err
		}
		delete(missing, string(piece))
	}
	if len(missing) == 0 {
		return nil
	}
	var names []string
	for _, w := range want {
		if missing[w] {
			names = append(names, fmt.Sprintf("%q", w))
		}
	}
	return fmt.Errorf("the model's vocabulary lacks the tokens a %s projector puts around images (%s): %w",
		projType, strings.Join(names, ", "), ErrProjectorMismatch)
}

// CheckFile reads a projector file's metadata and checks it for what would
// make mtmd abort, without loading it.
func CheckFile(path string) (*gguf.Projector, error) {
	f, err := ggufcheck.Open(path, gguf.ValidateProjector, ErrNotFound, ErrInvalidProjector)
	if err != nil {
		return nil, err
	}
	info, err := gguf.ProjectorInfo(f)
	if err != nil {
		return nil, fmt.Errorf("%s: %w: %w", path, ErrInvalidProjector, err)
	}
	return info, nil
}

// Close frees the projector (idempotent) and releases its hold on the model.
// It waits for a native call in progress — an encode holds the projector
// for a whole image or tile, seconds on a CPU — so a server stops its
// requests first (engine and pipeline Shutdown take a ctx for that).
func (p *Projector) Close() error {
	if p == nil {
		return nil
	}
	p.lock <- struct{}{}
	defer func() { <-p.lock }()
	if p.c == nil {
		return nil
	}
	p.closed.Store(true)
	p.cleanup.Stop()
	p.c.Free()
	p.c = nil
	llamaaccess.Release(p.model)
	return nil
}

func (p *Projector) use(f func(c *vlm.MtmdContext) error) error {
	return p.useCtx(context.Background(), f)
}

// useCtx runs f with the native context once no other call holds it; the
// wait (an encode holds it for a whole image or tile, seconds on a CPU)
// ends with ErrCancelled when ctx does.
func (p *Projector) useCtx(ctx context.Context, f func(c *vlm.MtmdContext) error) error {
	if p == nil {
		return ErrClosed
	}
	select {
	case p.lock <- struct{}{}:
	case <-ctx.Done():
		return fmt.Errorf("waiting for the projector: %w (%w)", ErrCancelled, ctx.Err())
	}
	defer func() { <-p.lock }()
	if p.c == nil {
		return ErrClosed
	}
	return f(p.c)
}

// open returns ErrClosed once the projector is closed. It does not wait for
// the lock: an encode holds it for a whole image (seconds on a CPU), and text
// needs no native call of the projector (Tokenize of a prompt whose images
// are all cached uses the model's vocabulary only).
func (p *Projector) open() error {
	if p == nil || p.closed.Load() {
		return ErrClosed
	}
	return nil
}

// warnedTypes holds the projector types Load has warned about.
var warnedTypes sync.Map

// Threads returns how many threads the vision encoder uses.
func (p *Projector) Threads() int { return p.threads }

// IdlePriority reports whether encodes run at the lowest CPU priority
// (Options.IdlePriority took effect).
func (p *Projector) IdlePriority() bool { return p.idle }

// Model returns the text model the projector was loaded for.
func (p *Projector) Model() *llama.Model { return p.model }

// Marker returns the text that stands for one image in a prompt.
func (p *Projector) Marker() string { return p.marker }

// Info returns the projector's metadata (type, image and patch size, merge
// factor, tokens per image, non-causal attention).
func (p *Projector) Info() gguf.Projector { return *p.info }

// UsesNonCausal reports whether image embeddings are decoded with
// non-causal attention; such projectors need UBatchSize ≥ an image's tokens.
func (p *Projector) UsesNonCausal() bool { return p.nonCausal }

// UsesMRoPE reports whether the text model takes M-RoPE positions.
func (p *Projector) UsesMRoPE() bool { return p.mrope }
