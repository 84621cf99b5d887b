package pipeline

import (
	"context"
	"encoding/binary"
	"fmt"
	"log/slog"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/vlm-go/vlm"
	"github.com/vlm-go/vlm/isolate"
	"github.com/vlm-go/vlm/llama"
	"github.com/vlm-go/vlm/mtmd"
)

// childName is the name the model process is registered under in
// package isolate: isolate.Main runs childMain in it.
const childName = "pipeline"

func init() { isolate.RegisterChild(childName, childMain) }

// childFD is the child's end of the socket pair (the first of
// exec.Cmd.ExtraFiles).
const childFD = 3

// childMain is the model process: it loads the pipeline the parent
// describes, says hello, then answers requests until the parent closes
// the socket (or dies), and exits.
func childMain() {
	f := os.NewFile(childFD, "vlm-parent")
	nc, err := net.FileConn(f)
	if err != nil {
		fmt.Fprintln(os.Stderr, "pipeline child: no socket from the parent:", err)
		os.Exit(4)
	}
	f.Close()
	w := newWire(nc)
	t, _, payload, err := w.recv()
	if err != nil || t != fConfig {
		os.Exit(4)
	}
	var cfg childConfig
	if err := decodeGob(payload, &cfg); err != nil {
		os.Exit(4)
	}
	// llama.cpp's lines go to stderr one per line, level first: the
	// parent logs them and keeps the last ones for a crash's error.
	vlm.SetLogger(slog.New(lineHandler{}))
	serveChild(w, cfg)
	os.Exit(0)
}

// lineHandler writes a record's level and message as one line to stderr.
type lineHandler struct{}

func (lineHandler) Enabled(context.Context, slog.Level) bool { return true }
func (lineHandler) Handle(_ context.Context, r slog.Record) error {
	_, err := fmt.Fprintf(os.Stderr, "%s %s\n", r.Level, strings.ReplaceAll(r.Message, "\n", " "))
	return err
}
func (h lineHandler) WithAttrs([]slog.Attr) slog.Handler { return h }
func (h lineHandler) WithGroup(string) slog.Handler      { return h }

// childServer is the state of the child's request loop.
type childServer struct {
	p *Pipeline
	w *wire

	mu   sync.Mutex
	reqs map[uint64]context.CancelFunc

	fault faultState
}

func serveChild(w *wire, cfg childConfig) {
	opts := Options{
		GPULayers: cfg.GPULayers, NoGPU: cfg.NoGPU, MainGPU: cfg.MainGPU, Threads: cfg.Threads, SequenceLength: cfg.SequenceLength,
		BatchSize: cfg.BatchSize, Sequences: cfg.Sequences, MaxWaiting: cfg.MaxWaiting, QuantizeQ8_0: cfg.QuantizeQ8_0,
		QuantizedCacheDir: cfg.QuantizedCacheDir, ChatTemplate: cfg.ChatTemplate, ImageCacheBytes: cfg.ImageCacheBytes, BatchInvariant: cfg.BatchInvariant,
		ImageMemory: -1, MaxImageBytes: -1, // the parent decodes images
	}
	if cfg.Progress {
		opts.Progress = func(v float32) bool { return w.send(fLoad, 0, f32Payload(v)) == nil }
	}
	p, err := New(context.Background(), cfg.Model, cfg.Projector, opts)
	if err != nil {
		_ = w.sendGob(fHello, 0, hello{Err: toWire(err)})
		return
	}
	if err := w.sendGob(fHello, 0, hello{Marker: p.marker, ModelPath: p.modelPath, ImagePixels: p.proj.ImagePixels(),
		Engine: p.eng.Options(), PID: os.Getpid()}); err != nil {
		return
	}
	s := &childServer{p: p, w: w, reqs: map[uint64]context.CancelFunc{}}
	stop := make(chan struct{})
	go s.beat(cfg.Beat, stop)
	defer close(stop)
	for {
		t, id, payload, err := w.recv()
		if err != nil {
			return // the parent closed the socket or died
		}
		switch t {
		case fRequest:
			var req wireRequest
			if err := decodeGob(payload, &req); err != nil {
				_ = w.sendGob(fEnd, id, wireEnd{Err: toWire(fmt.Errorf("pipeline: a request the child cannot read: %v: %w", err, ErrInvalidInput)), Stop: llama.StopError})
				continue
			}
			ctx, cancel := context.WithCancel(context.Background())
			s.mu.Lock()
			s.reqs[id] = cancel
			s.mu.Unlock()
			go s.serve(ctx, id, req)
		case fCancel:
			s.mu.Lock()
			if cancel := s.reqs[id]; cancel != nil {
				cancel()
			}
			s.mu.Unlock()
		case fStats:
			_ = w.sendGob(fStats, id, s.snapshot())
		case fFault:
			s.fault.arm(string(payload))
		}
	}
}

func (s *childServer) snapshot() snapshot {
	return snapshot{Engine: s.p.EngineStats(), Cache: s.p.ImageCacheStats()}
}

// beat sends the child's counters every d: the parent's sign of life.
func (s *childServer) beat(d time.Duration, stop <-chan struct{}) {
	t := time.NewTicker(d)
	defer t.Stop()
	for {
		select {
		case <-stop:
			return
		case <-t.C:
			if s.w.sendGob(fBeat, 0, s.snapshot()) != nil {
				return
			}
		}
	}
}

// serve answers one request, streaming its tokens.
func (s *childServer) serve(ctx context.Context, id uint64, req wireRequest) {
	defer func() {
		s.mu.Lock()
		if cancel := s.reqs[id]; cancel != nil {
			cancel()
			delete(s.reqs, id)
		}
		s.mu.Unlock()
	}()
	images := make([]*mtmd.Image, len(req.Images))
	for i, im := range req.Images {
		d, err := mtmd.ImageFromRGB(im.W, im.H, im.RGB)
		if err != nil {
			_ = s.w.sendGob(fEnd, id, wireEnd{Err: toWire(fmt.Errorf("pipeline: image %d of %d: %w", i+1, len(req.Images), err)), Stop: llama.StopError})
			return
		}
		images[i] = d
	}
	s.fault.request(len(images) > 0)
	opts := GenerateOptions{MaxTokens: req.MaxTokens, Sampler: req.Sampler, Stop: req.Stop, ReturnFullText: req.ReturnFullText}
	if req.Progress {
		opts.ImageProgress = func(done, total int) {
			b := binary.LittleEndian.AppendUint32(nil, uint32(done))
			_ = s.w.send(fProgress, id, binary.LittleEndian.AppendUint32(b, uint32(total)))
		}
	}
	resp := &Response{}
	var buf []byte
	err := s.p.answer(ctx, req.Msgs, images, opts, req.MaxPos, time.Now(), resp, func(tok llama.GeneratedToken, err error) bool {
		if err != nil {
			return false // answer returns it
		}
		buf = appendToken(buf[:0], tok)
		if s.w.send(fToken, id, buf) != nil {
			return false
		}
		s.fault.token()
		return true
	})
	_ = s.w.sendGob(fEnd, id, wireEnd{Err: toWire(err), Prompt: resp.Prompt, Text: resp.Text, Answer: resp.answer,
		Tokens: resp.Tokens, Stop: resp.StopReason, Stats: resp.Stats})
}

// testFaults is set by the package's own test files only (export_test.go):
// the crash injection below is honoured in this package's test binary and
// nowhere else.
var testFaults bool

// faultState is a crash armed by a test (InjectFault in export_test.go):
//
//	segv-decode:N   SIGSEGV after the child has sent N more tokens
//	abort-encode    SIGABRT when a request with images arrives (its
//	                images are about to be encoded)
//	hang-decode:N   the whole process stops (SIGSTOP) after N more tokens:
//	                no heartbeat, no progress
//	exit:N          os.Exit(N) at once
type faultState struct {
	kind  atomic.Value // string
	count atomic.Int64
}

func (f *faultState) arm(spec string) {
	if !testFaults {
		return
	}
	kind, n, _ := strings.Cut(spec, ":")
	k, _ := strconv.Atoi(n)
	if kind == "exit" {
		os.Exit(k)
	}
	f.count.Store(int64(k))
	f.kind.Store(kind)
}

func (f *faultState) armed() string {
	k, _ := f.kind.Load().(string)
	return k
}

func (f *faultState) token() {
	switch f.armed() {
	case "segv-decode":
		if f.count.Add(-1) <= 0 {
			_ = syscall.Kill(os.Getpid(), syscall.SIGSEGV)
			time.Sleep(time.Minute)
		}
	case "hang-decode":
		if f.count.Add(-1) <= 0 {
			_ = syscall.Kill(os.Getpid(), syscall.SIGSTOP)
		}
	}
}

func (f *faultState) request(images bool) {
	if images && f.armed() == "abort-encode" {
		_ = syscall.Kill(os.Getpid(), syscall.SIGABRT)
		time.Sleep(time.Minute)
	}
}
