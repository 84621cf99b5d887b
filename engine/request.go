package engine

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/vlm-go/vlm/llama"
	"github.com/vlm-go/vlm/mtmd"
	"github.com/vlm-go/vlm/sampler"
)

// unit is one entry of a prompt or a sequence: a text token, or a whole
// image chunk (which is reused whole or not at all).
type unit struct {
	tok   llama.Token // -1 for an image chunk
	image string      // the image's ID and tile, for image chunks
	n     int         // entries: 1, or the chunk's embeddings
	npos  int32       // positions taken
	chunk int         // index in the request's chunk list (prompt units)
}

func (u unit) same(v unit) bool { return u.tok == v.tok && u.image == v.image && u.n == v.n }

// cells is the KV cells the units take: one per entry.
func cells(units []unit) int {
	n := 0
	for _, u := range units {
		n += u.n
	}
	return n
}

// slot is one sequence of the context and what it holds.
type slot struct {
	id       int32
	units    []unit   // what the KV cache holds for this sequence, in order
	req      *request // the request running in it, nil when free
	lastUsed int64
}

// request states, as the scheduler sees them.
const (
	stateWaiting = iota
	statePrefill
	stateDecoding
	stateFollowing // a SubmitN choice waiting for its leader's prompt
)

// request is a Request being answered.
type request struct {
	e         *Engine
	ctx       context.Context
	cancelCtx context.CancelCauseFunc
	stopWake  func() bool
	chunks    *mtmd.Chunks
	list      []mtmd.Chunk
	units     []unit
	promptPos int32 // positions of the prompt
	maxPos    int32
	reserve   int // KV cells reserved while it runs
	smp       *sampler.Sampler
	gen       *llama.Generation
	genOpts   llama.GenerateOptions
	progress  func(done, total int)
	room      int // KV cells for the answer (part of reserve)
	// Logprobs (Request.Logprobs): the output's logits are copied into
	// logits before sampling; topN alternatives are listed.
	logprobs bool
	topN     int
	logits   []float32
	// SubmitN: the first choice (the leader) evaluates the prompt and
	// holds the others (followers), which wait in stateFollowing and start
	// from a copy of its sequence when its prompt is done (forked).
	leader    *request
	followers []*request
	forked    bool
	events    chan event
	unread    atomic.Int32  // events sent and not yet taken by the reader
	finished  chan struct{} // closed (before events) when the scheduler is done with res
	stalled   atomic.Bool   // the scheduler skipped it for a full buffer
	submitted time.Time

	// The public end: done is closed when res is final, which is when the
	// scheduler has finished the request and no loop over Stream.Tokens
	// is running (a reader that breaks out sets res to what it took).
	resMu      sync.Mutex
	done       chan struct{}
	reading    bool // a loop over Tokens is running
	ended      bool // the scheduler has finished the request
	doneClosed bool

	// Written by the encoder, read by the scheduler, under embMu.
	embMu      sync.Mutex
	embd       [][]float32 // per chunk, once known
	encErr     error
	encoded    int
	encCached  int
	encodeTime time.Duration
	refs       atomic.Int32 // holders of chunks: the scheduler and, for images, the encoder
	over       atomic.Bool  // the request has ended: the encoder may skip it

	// Scheduler state.
	state       int
	seq         *slot
	next        int   // prompt units evaluated
	pos         int32 // next position of the sequence
	pending     int   // prompt units in the batch being decoded
	row         int   // batch index of its output in the batch being decoded, -1 for none
	lastTok     llama.Token
	imagesDone  int
	imagesTotal int
	admitted    time.Time
	firstTok    time.Time
	tail        *llama.GeneratedToken // held-back text released at the end
	res         Result
}

// release drops one holder of the chunks; the last closes them.
func (r *request) release() {
	if r.refs.Add(-1) == 0 && r.chunks != nil {
		r.chunks.Close()
	}
}

// send delivers ev to the reader; there is room (the scheduler skips a
// request whose buffer is full, and sends at most one event per step).
func (r *request) send(ev event) {
	r.unread.Add(1)
	r.events <- ev
}

// startReading records a loop over Tokens; false when res is already
// final (or another loop runs): that loop then leaves res alone.
func (r *request) startReading() bool {
	r.resMu.Lock()
	defer r.resMu.Unlock()
	if r.doneClosed || r.reading {
		return false
	}
	r.reading = true
	return true
}

// taken is what a reader that broke out of Tokens took.
type taken struct {
	tokens int
	text   string
}

// stopReading ends a loop over Tokens. took is what a reader that broke
// out took, after the request has ended: an answer (no error) becomes
// that, with StopBreak. Done is closed once the request has ended.
func (r *request) stopReading(took *taken) {
	r.resMu.Lock()
	defer r.resMu.Unlock()
	r.reading = false
	if took != nil && r.res.Err == nil {
		r.res.Reason = llama.StopBreak
		r.res.Tokens = r.res.Tokens[:min(took.tokens, len(r.res.Tokens))]
		r.res.Text = took.text
	}
	if r.ended {
		r.closeDone()
	}
}

// markEnded records that the scheduler has finished the request; Done is
// closed unless a loop over Tokens runs (that loop closes it when it ends).
func (r *request) markEnded() {
	r.resMu.Lock()
	defer r.resMu.Unlock()
	r.ended = true
	if !r.reading {
		r.closeDone()
	}
}

func (r *request) closeDone() {
	if !r.doneClosed {
		r.doneClosed = true
		close(r.done)
	}
}

// cancel cancels the request with cause and wakes the scheduler.
func (r *request) cancel(cause error) {
	r.cancelCtx(cause)
	r.e.wakeUp()
}

// Submit queues a request and returns its stream. Errors it can tell at
// once come back here: ErrClosed (ErrShuttingDown after Shutdown),
// ErrOverloaded, a prompt that can never fit (llama.ErrPromptTooLong), an
// invalid request or sampler; later ones (a failed decode, a
// cancellation) end the stream. ctx cancels the request, waiting or
// running.
func (e *Engine) Submit(ctx context.Context, req Request) (*Stream, error) {
	s, err := e.SubmitN(ctx, req, 1)
	if err != nil {
		return nil, err
	}
	return s[0], nil
}

// MaxChoices bounds SubmitN's n (the engine's Sequences bound it too).
const MaxChoices = 16

// SubmitN queues one prompt for n answers (choices) and returns their
// streams in order; n = 1 is Submit. The prompt (its images too) is
// evaluated once, in the first choice's sequence; when it is done, every
// other choice starts from a copy of that sequence (llama_memory_seq_cp:
// the KV cells are shared, not duplicated, and Stats.Forked counts them)
// and samples its own answer from the same logits with its own sampler:
// choice i's Sampler.Seed is req.Sampler.Seed + i (wrapping, 0 skipped),
// and a Seed of 0 gives every choice a random seed (Result.Seed tells).
// Like any requests decoded together, the choices' logits can differ in
// their last bits from those of a request decoded alone (ggml takes other
// kernels for a batch of several rows), so a sampled choice is
// reproduced by the same SubmitN, not always by its seed alone. The choices run at
// once, one sequence each, so n may not exceed Options.Sequences (nor
// MaxChoices), and the KV cache must hold the prompt once and room for
// every answer. Each stream reports the prompt's PromptTokens; only the
// first one's EvaluatedTokens are nonzero. Cancelling ctx cancels every
// choice; a stream's Cancel ends its own choice, except that cancelling
// the first one before its prompt is evaluated ends them all.
func (e *Engine) SubmitN(ctx context.Context, req Request, n int) ([]*Stream, error) {
	if n < 1 || n > MaxChoices || n > e.opts.Sequences {
		if req.Chunks != nil {
			req.Chunks.Close()
		}
		return nil, fmt.Errorf("%d choices: between 1 and %d (the engine's sequences; at most %d): %w",
			n, min(e.opts.Sequences, MaxChoices), MaxChoices, ErrInvalidRequest)
	}
	r, err := e.newRequest(ctx, req)
	if err != nil {
		if req.Chunks != nil {
			req.Chunks.Close()
		}
		return nil, err
	}
	if need := r.reserve + (n-1)*r.room; need > e.opts.ContextSize {
		r.discard()
		return nil, fmt.Errorf("the prompt's %d entries and room for %d answers need %d KV cells, the engine has %d: %w (%w)",
			r.res.PromptTokens, n, need, e.opts.ContextSize, llama.ErrPromptTooLong, mtmd.ErrContextFull)
	}
	for i := 1; i < n; i++ {
		f, err := e.newFollower(ctx, r, req, uint32(i))
		if err != nil {
			r.discard()
			return nil, err
		}
		r.followers = append(r.followers, f)
	}
	e.mu.Lock()
	switch {
	case e.closed:
		err = ErrClosed
	case e.draining:
		err = ErrShuttingDown
	case e.opts.MaxWaiting >= 0 && len(e.waiting)+int(e.counters.waiting.Load()) >= e.opts.MaxWaiting:
		e.counters.overloaded.Add(1)
		err = fmt.Errorf("%d requests are waiting for one of %d sequences: %w", e.opts.MaxWaiting, e.opts.Sequences, ErrOverloaded)
	default:
		e.waiting = append(e.waiting, r)
		e.counters.submitted.Add(int64(n))
	}
	e.mu.Unlock()
	if err != nil {
		r.discard()
		return nil, err
	}
	if r.refs.Load() == 2 {
		e.enc.add(r)
	}
	e.wakeUp()
	out := []*Stream{{r: r}}
	for _, f := range r.followers {
		out = append(out, &Stream{r: f})
	}
	return out, nil
}

// discard frees what newRequest made for a request that was not queued,
// and its followers.
func (r *request) discard() {
	r.stopWake()
	r.cancelCtx(nil)
	r.smp.Close()
	if r.chunks != nil {
		r.chunks.Close()
	}
	for _, f := range r.followers {
		f.discard()
	}
}

// newFollower prepares choice i of leader's SubmitN: the same prompt,
// evaluated by the leader, and a sampler of its own.
func (e *Engine) newFollower(ctx context.Context, leader *request, req Request, i uint32) (*request, error) {
	if ctx == nil {
		ctx = context.Background()
	}
	f := &request{e: e, leader: leader, list: leader.list, units: leader.units, promptPos: leader.promptPos, maxPos: leader.maxPos,
		reserve: leader.room, room: leader.room, genOpts: leader.genOpts, logprobs: leader.logprobs, topN: leader.topN,
		submitted: leader.submitted, row: -1}
	f.res.Sequence = -1
	f.res.PromptTokens, f.res.ImageTokens = leader.res.PromptTokens, leader.res.ImageTokens
	cfg := req.Sampler
	if cfg.Seed != 0 {
		if cfg.Seed += i; cfg.Seed == 0 {
			cfg.Seed = 1
		}
	}
	smp, err := sampler.New(e.model, cfg)
	if err != nil {
		return nil, err
	}
	f.smp = smp
	f.res.Seed = smp.Seed()
	f.events = make(chan event, e.opts.StreamBuffer)
	f.finished = make(chan struct{})
	f.done = make(chan struct{})
	f.ctx, f.cancelCtx = context.WithCancelCause(ctx)
	f.stopWake = context.AfterFunc(f.ctx, e.wakeUp)
	f.refs.Store(1)
	return f, nil
}

// newRequest checks req and prepares what the request needs.
func (e *Engine) newRequest(ctx context.Context, req Request) (*request, error) {
	if ctx == nil {
		ctx = context.Background()
	}
	r := &request{e: e, chunks: req.Chunks, progress: req.ImageProgress, submitted: time.Now(), row: -1}
	r.res.Sequence = -1
	switch {
	case req.Chunks != nil && len(req.Tokens) > 0:
		return nil, fmt.Errorf("a request has Chunks or Tokens, not both: %w", ErrInvalidRequest)
	case req.Chunks != nil:
		if e.proj == nil {
			return nil, fmt.Errorf("chunks for an engine without a projector: %w", ErrInvalidRequest)
		}
		r.list = req.Chunks.All()
	case len(req.Tokens) > 0:
		r.list = []mtmd.Chunk{{Type: mtmd.ChunkText, NTokens: len(req.Tokens), NPos: len(req.Tokens), Tokens: req.Tokens}}
	default:
		return nil, fmt.Errorf("empty prompt: %w", ErrInvalidRequest)
	}
	if req.MaxTokens < 0 {
		return nil, fmt.Errorf("MaxTokens %d: %w", req.MaxTokens, ErrInvalidRequest)
	}
	maxPos := e.opts.SequenceLength
	if req.SequenceLength < 0 || req.SequenceLength > maxPos {
		return nil, fmt.Errorf("SequenceLength %d: at most the engine's SequenceLength %d: %w", req.SequenceLength, maxPos, ErrInvalidRequest)
	}
	if req.SequenceLength > 0 {
		maxPos = req.SequenceLength
	}
	nVocab := e.nVocab
	images := 0
	for i, ch := range r.list {
		switch ch.Type {
		case mtmd.ChunkText:
			for _, t := range ch.Tokens {
				if t < 0 || int(t) >= nVocab {
					return nil, fmt.Errorf("token %d of a %d-token vocabulary: %w", t, nVocab, llama.ErrInvalidArgument)
				}
				r.units = append(r.units, unit{tok: t, n: 1, npos: 1, chunk: i})
			}
		case mtmd.ChunkImage:
			if e.nonCausal && ch.NTokens > e.x.Options().UBatchSize {
				return nil, fmt.Errorf("an image of %d tokens needs a batch of at least %d, the engine has %d: %w",
					ch.NTokens, ch.NTokens, e.x.Options().UBatchSize, mtmd.ErrUBatchTooSmall)
			}
			images++
			r.units = append(r.units, unit{tok: -1, image: fmt.Sprintf("%s/%d", ch.ImageID, ch.Tile), n: ch.NTokens, npos: int32(ch.NPos), chunk: i})
		default:
			return nil, mtmd.ErrAudioUnsupported
		}
		r.promptPos += int32(ch.NPos)
		r.res.PromptTokens += ch.NTokens
		if ch.Type == mtmd.ChunkImage {
			r.res.ImageTokens += ch.NTokens
		}
	}
	if len(r.units) == 0 {
		return nil, fmt.Errorf("empty prompt: %w", ErrInvalidRequest)
	}
	if r.units[len(r.units)-1].tok < 0 {
		return nil, fmt.Errorf("the prompt ends with an image; it must end with text (e.g. the chat template's generation prompt): %w", ErrInvalidRequest)
	}
	if int(r.promptPos) >= maxPos {
		return nil, fmt.Errorf("prompt needs %d positions and leaves no room for an answer in a sequence of %d: %w (%w)",
			r.promptPos, maxPos, llama.ErrPromptTooLong, mtmd.ErrContextFull)
	}
	r.maxPos = int32(maxPos)
	room := maxPos - int(r.promptPos)
	if req.MaxTokens > 0 {
		room = min(room, req.MaxTokens+1)
	}
	// KV cells: one per prompt entry (an M-RoPE image has more entries
	// than positions) and one per answer token.
	r.reserve = r.res.PromptTokens + room
	r.room = room
	if r.reserve > e.opts.ContextSize {
		return nil, fmt.Errorf("the prompt's %d entries and room for its answer need %d KV cells, the engine has %d: %w (%w)",
			r.res.PromptTokens, r.reserve, e.opts.ContextSize, llama.ErrPromptTooLong, mtmd.ErrContextFull)
	}
	if req.TopLogprobs < 0 || req.TopLogprobs > llama.MaxTopLogprobs || (req.TopLogprobs > 0 && !req.Logprobs) {
		return nil, fmt.Errorf("TopLogprobs %d: 0 to %d, with Logprobs: %w", req.TopLogprobs, llama.MaxTopLogprobs, ErrInvalidRequest)
	}
	smp, err := sampler.New(e.model, req.Sampler)
	if err != nil {
		return nil, err
	}
	r.smp = smp
	r.res.Seed = smp.Seed()
	r.genOpts = llama.GenerateOptions{MaxTokens: req.MaxTokens, Stop: req.Stop, Special: req.Special}
	r.logprobs, r.topN = req.Logprobs, req.TopLogprobs
	r.events = make(chan event, e.opts.StreamBuffer)
	r.finished = make(chan struct{})
	r.done = make(chan struct{})
	r.embd = make([][]float32, len(r.list))
	r.ctx, r.cancelCtx = context.WithCancelCause(ctx)
	r.stopWake = context.AfterFunc(r.ctx, e.wakeUp)
	r.refs.Store(1)
	if images > 0 {
		r.refs.Store(2)
	}
	return r, nil
}

// embeddings returns chunk i's embeddings once the encoder has them, and
// the encoder's error.
func (r *request) embeddings(i int) ([]float32, error) {
	r.embMu.Lock()
	defer r.embMu.Unlock()
	return r.embd[i], r.encErr
}
