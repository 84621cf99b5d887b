package pipeline

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"encoding/gob"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"sync"
	"time"

	"github.com/vlm-go/vlm/engine"
	"github.com/vlm-go/vlm/gguf"
	"github.com/vlm-go/vlm/llama"
	"github.com/vlm-go/vlm/mtmd"
	"github.com/vlm-go/vlm/sampler"
	"github.com/vlm-go/vlm/template"
)

// The wire between the parent and its model process (ChildProcess): one
// Unix socket pair, frames of
//
//	u32 length (of what follows) | u8 type | u64 request id | payload
//
// little-endian. Tokens, the hot path, are fixed binary fields and the
// text; what crosses once per request (the request, its end) or seldom
// (hello, statistics) is gob, one encoder per frame.
type frameType uint8

const (
	fConfig   frameType = iota + 1 // parent → child: gob childConfig, first frame
	fHello                         // child → parent: gob hello, once loaded
	fLoad                          // child → parent: load progress, f32
	fRequest                       // parent → child: gob wireRequest
	fCancel                        // parent → child: cancel request id
	fToken                         // child → parent: i32 id, i32 pos, i64 elapsed ns, text
	fProgress                      // child → parent: u32 done, u32 total (image chunks)
	fEnd                           // child → parent: gob wireEnd
	fBeat                          // child → parent: gob snapshot, every heartbeat
	fStats                         // parent → child: a query; child → parent: gob snapshot, same id
	fFault                         // parent → child: a test fault (test binaries only)
)

const frameHeader = 4 + 1 + 8

// maxFrame bounds a frame a reader accepts (a request with many large
// images still fits).
const maxFrame = 1 << 30

// wire is one end of the socket: frames are written whole under a lock
// and read by one goroutine.
type wire struct {
	c   io.ReadWriteCloser
	r   *bufio.Reader
	wmu sync.Mutex
	w   *bufio.Writer
}

func newWire(c io.ReadWriteCloser) *wire {
	return &wire{c: c, r: bufio.NewReaderSize(c, 64<<10), w: bufio.NewWriterSize(c, 64<<10)}
}

// send writes one frame and flushes it.
func (w *wire) send(t frameType, id uint64, payload []byte) error {
	var h [frameHeader]byte
	binary.LittleEndian.PutUint32(h[:4], uint32(1+8+len(payload)))
	h[4] = byte(t)
	binary.LittleEndian.PutUint64(h[5:], id)
	w.wmu.Lock()
	defer w.wmu.Unlock()
	if _, err := w.w.Write(h[:]); err != nil {
		return err
	}
	if _, err := w.w.Write(payload); err != nil {
		return err
	}
	return w.w.Flush()
}

// sendGob writes v gob-encoded as one frame.
func (w *wire) sendGob(t frameType, id uint64, v any) error {
	var b bytes.Buffer
	if err := gob.NewEncoder(&b).Encode(v); err != nil {
		return err
	}
	return w.send(t, id, b.Bytes())
}

// recv reads the next frame; the payload is the caller's.
func (w *wire) recv() (frameType, uint64, []byte, error) {
	var h [frameHeader]byte
	if _, err := io.ReadFull(w.r, h[:]); err != nil {
		return 0, 0, nil, err
	}
	n := binary.LittleEndian.Uint32(h[:4])
	if n < 9 || n > maxFrame {
		return 0, 0, nil, fmt.Errorf("pipeline: bad frame length %d from the other process", n)
	}
	payload := make([]byte, n-9)
	if _, err := io.ReadFull(w.r, payload); err != nil {
		return 0, 0, nil, err
	}
	return frameType(h[4]), binary.LittleEndian.Uint64(h[5:]), payload, nil
}

func decodeGob(payload []byte, v any) error {
	return gob.NewDecoder(bytes.NewReader(payload)).Decode(v)
}

// appendToken encodes a token frame's payload.
func appendToken(b []byte, tok llama.GeneratedToken) []byte {
	b = binary.LittleEndian.AppendUint32(b, uint32(tok.ID))
	b = binary.LittleEndian.AppendUint32(b, uint32(tok.Pos))
	b = binary.LittleEndian.AppendUint64(b, uint64(tok.Elapsed))
	return append(b, tok.Text...)
}

func parseToken(p []byte) (llama.GeneratedToken, error) {
	if len(p) < 16 {
		return llama.GeneratedToken{}, fmt.Errorf("pipeline: short token frame")
	}
	return llama.GeneratedToken{
		ID: llama.Token(int32(binary.LittleEndian.Uint32(p))), Pos: int32(binary.LittleEndian.Uint32(p[4:])),
		Elapsed: time.Duration(binary.LittleEndian.Uint64(p[8:])), Text: string(p[16:]),
	}, nil
}

func f32Payload(v float32) []byte { return binary.LittleEndian.AppendUint32(nil, math.Float32bits(v)) }

// childConfig is what the child loads: New's arguments less what stays in
// the parent (image decoding and its memory, the trial).
type childConfig struct {
	Model, Projector  string
	GPULayers         int
	NoGPU             bool
	MainGPU           int
	Threads           int // Options.Threads: 0 means vlm.DefaultThreads()
	SequenceLength    int
	BatchSize         int
	Sequences         int
	MaxWaiting        int
	QuantizeQ8_0      bool
	QuantizedCacheDir string
	ChatTemplate      string
	ImageCacheBytes   int64
	BatchInvariant    bool
	Progress          bool // send fLoad frames
	Beat              time.Duration
}

// hello is the child's answer to its config: what the parent needs of the
// loaded pipeline, or why it did not load.
type hello struct {
	Err         *wireError
	Marker      string
	ModelPath   string
	ImagePixels int
	Engine      engine.Options
	PID         int
}

// wireRequest is one call: the chat, its images as RGB pixels, the options.
type wireRequest struct {
	Msgs           []template.Message
	Images         []wireImage
	MaxTokens      int
	Sampler        sampler.Config
	Stop           []string
	ReturnFullText bool
	Progress       bool
	MaxPos         int
}

type wireImage struct {
	W, H int
	RGB  []byte
}

// wireEnd is how a call ended, with its response.
type wireEnd struct {
	Err    *wireError
	Prompt string
	Text   string
	Answer string
	Tokens []llama.Token
	Stop   llama.StopReason
	Stats  Stats
}

// snapshot is the child's counters.
type snapshot struct {
	Engine engine.Stats
	Cache  mtmd.CacheStats
}

// wireError carries an error across: its text and the sentinels it
// matches (indices into wireSentinels), so that errors.Is works on the
// other side.
type wireError struct {
	Msg   string
	Kinds []uint8
}

// wireSentinels are the errors errors.Is finds across the wire. Append
// only (both ends are the same program, but keep indices stable anyway).
var wireSentinels = []error{
	ErrInvalidInput, ErrInvalidOptions, ErrClosed, ErrOverloaded, ErrImageMemoryBusy, ErrImageTooLarge, ErrShuttingDown,
	llama.ErrPromptTooLong, llama.ErrCancelled, llama.ErrNotFound, llama.ErrInvalidModel, llama.ErrUnsupportedArchitecture,
	llama.ErrLoad, llama.ErrContextFull, llama.ErrInvalidArgument, llama.ErrDecode, llama.ErrNonFinite, llama.ErrNativeException,
	mtmd.ErrNotFound, mtmd.ErrInvalidProjector, mtmd.ErrProjectorMismatch, mtmd.ErrInvalidImage, mtmd.ErrUnsupportedFormat,
	mtmd.ErrMarkerMismatch, mtmd.ErrUBatchTooSmall, mtmd.ErrAudioUnsupported,
	sampler.ErrInvalidConfig, template.ErrNoTemplate, template.ErrUnknownTemplate, template.ErrInvalidMessage,
	template.ErrImageCount, template.ErrRenderLimit, gguf.ErrNotGGUF, gguf.ErrCorrupt, gguf.ErrTruncated, gguf.ErrInvalid,
	gguf.ErrWouldAbort, engine.ErrInvalidRequest, context.Canceled, context.DeadlineExceeded,
}

func toWire(err error) *wireError {
	if err == nil {
		return nil
	}
	w := &wireError{Msg: err.Error()}
	for i, s := range wireSentinels {
		if errors.Is(err, s) {
			w.Kinds = append(w.Kinds, uint8(i))
		}
	}
	return w
}

func (w *wireError) err() error {
	if w == nil {
		return nil
	}
	return &remoteError{w: *w}
}

// remoteError is an error that happened in the child process.
type remoteError struct{ w wireError }

func (e *remoteError) Error() string { return e.w.Msg }

// Is matches the sentinels the error matched in the child.
func (e *remoteError) Is(target error) bool {
	for _, k := range e.w.Kinds {
		if int(k) < len(wireSentinels) && wireSentinels[k] == target {
			return true
		}
	}
	return false
}

func init() {
	// template.Map values (Message.Extra) are interfaces: gob sends the
	// usual JSON-like types.
	// gob knows the basic types, []any and map[string]any already.
	for _, v := range []any{template.Map{}, template.KV{}, json.RawMessage{}, json.Number("")} {
		gob.Register(v)
	}
}

func gobEncode(b *bytes.Buffer, v any) error { return gob.NewEncoder(b).Encode(v) }

func float32FromPayload(p []byte) float32 { return math.Float32frombits(binary.LittleEndian.Uint32(p)) }

func u32(p []byte) uint32 { return binary.LittleEndian.Uint32(p) }
