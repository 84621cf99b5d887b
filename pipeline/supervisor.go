package pipeline

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/vlm-go/vlm/engine"
	"github.com/vlm-go/vlm/isolate"
	"github.com/vlm-go/vlm/llama"
	"github.com/vlm-go/vlm/mtmd"
	"github.com/vlm-go/vlm/template"
)

// newChildPipeline is New for Options.Process == ChildProcess: the
// pipeline keeps its image decoding, sessions and the API here, and a
// supervised child process holds the model.
func newChildPipeline(ctx context.Context, modelPath, projectorPath string, opts Options) (*Pipeline, error) {
	if !isolate.Enabled() {
		return nil, fmt.Errorf("pipeline: Options.Process ChildProcess: %w", isolate.ErrNotEnabled)
	}
	sopts, err := opts.Supervisor.withDefaults()
	if err != nil {
		return nil, err
	}
	if opts.Isolated {
		layers := opts.GPULayers
		if layers == 0 {
			layers = -1
		}
		if err := isolate.Check(ctx, modelPath, projectorPath, isolate.Options{GPULayers: layers, NoGPU: opts.NoGPU}); err != nil {
			return nil, fmt.Errorf("pipeline: %w", err)
		}
	}
	cfg := childConfig{
		Model: modelPath, Projector: projectorPath, GPULayers: opts.GPULayers, NoGPU: opts.NoGPU, MainGPU: opts.MainGPU,
		Threads: opts.Threads, SequenceLength: opts.SequenceLength, BatchSize: opts.BatchSize, Sequences: opts.Sequences,
		MaxWaiting: opts.MaxWaiting, QuantizeQ8_0: opts.QuantizeQ8_0, QuantizedCacheDir: opts.QuantizedCacheDir,
		ChatTemplate: opts.ChatTemplate, ImageCacheBytes: opts.ImageCacheBytes, BatchInvariant: opts.BatchInvariant, Beat: sopts.beat(),
	}
	s := &supervisor{cfg: cfg, opts: sopts, changed: make(chan struct{}), stop: make(chan struct{})}
	s.ctx, s.cancel = context.WithCancel(context.Background())
	c, err := s.start(ctx, opts.Progress)
	if err != nil {
		s.cancel()
		return nil, err
	}
	s.mu.Lock()
	s.hello = c.hello
	c.mu.Lock()
	if !c.dead { // else died has scheduled a restart
		s.cur = c
	}
	c.mu.Unlock()
	s.mu.Unlock()
	p := &Pipeline{opts: opts, sup: s, marker: c.hello.Marker, modelPath: c.hello.ModelPath}
	p.setupImageMemory(c.hello.ImagePixels)
	if opts.ImageCacheBytes >= 0 {
		n := opts.ImageCacheBytes
		if n <= 0 {
			n = mtmd.DefaultImageCacheBytes
		}
		p.decoded = newDecodedCache(n / 4)
	}
	return p, nil
}

// supervisor runs the child process of a ChildProcess pipeline: starts
// it, watches it, restarts it after a death, and gives calls the running
// child.
type supervisor struct {
	cfg    childConfig
	opts   Supervisor
	ctx    context.Context // cancelled by close: ends a start in progress
	cancel context.CancelFunc

	mu       sync.Mutex
	cur      *child        // the running child; nil while restarting or stopped
	changed  chan struct{} // closed and replaced at every change of the state below
	loopErr  error         // set when restarts stopped (crash loop); final
	lastErr  error         // the last death
	closed   bool
	draining bool
	deaths   []time.Time // within CrashLoopWindow
	waiting  int         // calls waiting for a child
	restarts int
	hello    hello    // of the first child (its engine options)
	base     snapshot // cumulative counters of the children that died
	stop     chan struct{}
	wg       sync.WaitGroup // restarts in progress
}

// broadcast wakes the calls waiting for a change; s.mu is held.
func (s *supervisor) broadcast() {
	close(s.changed)
	s.changed = make(chan struct{})
}

// start runs a child and waits for its hello: the model loaded.
func (s *supervisor) start(ctx context.Context, progress func(float32) bool) (*child, error) {
	exe, err := os.Executable()
	if err != nil {
		return nil, fmt.Errorf("pipeline: finding the program to re-execute: %w", err)
	}
	fds, err := syscall.Socketpair(syscall.AF_UNIX, syscall.SOCK_STREAM|syscall.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("pipeline: socket pair for the model's process: %w", err)
	}
	pf, cf := os.NewFile(uintptr(fds[0]), "vlm-child"), os.NewFile(uintptr(fds[1]), "vlm-parent")
	nc, err := net.FileConn(pf)
	pf.Close()
	if err != nil {
		cf.Close()
		return nil, fmt.Errorf("pipeline: socket pair for the model's process: %w", err)
	}
	c := &child{s: s, nc: nc, w: newWire(nc), calls: map[uint64]*call{}, queries: map[uint64]chan snapshot{}, done: make(chan struct{})}
	c.log = &childLog{logger: s.opts.Logger}
	cmd := exec.Command(exe)
	// GGML_NO_BACKTRACE: ggml's abort would attach gdb, where installed
	// (a second or more per crash); the error carries the assert's line.
	cmd.Env = append(os.Environ(), isolate.ChildEnv(childName), "GGML_NO_BACKTRACE=1")
	cmd.ExtraFiles = []*os.File{cf}
	cmd.Stdout, cmd.Stderr = c.log, c.log
	c.cmd = cmd
	err = cmd.Start()
	cf.Close()
	if err != nil {
		nc.Close()
		return nil, fmt.Errorf("pipeline: starting the model's process: %w", err)
	}
	c.pid = cmd.Process.Pid
	c.log.pid = c.pid
	cfg := s.cfg
	cfg.Progress = progress != nil
	if err := c.w.sendGob(fConfig, 0, cfg); err != nil {
		return nil, c.failStart(err)
	}
	// The load is bounded by LoadTimeout and ctx: either sets the read
	// deadline, which ends the wait below.
	_ = nc.SetReadDeadline(time.Now().Add(s.opts.LoadTimeout))
	stopWatch := context.AfterFunc(ctx, func() { _ = nc.SetReadDeadline(time.Now()) })
	defer stopWatch()
	for {
		t, _, payload, err := c.w.recv()
		if err != nil {
			if ctx.Err() != nil {
				err = fmt.Errorf("%w (%w)", llama.ErrCancelled, context.Cause(ctx))
			}
			return nil, c.failStart(err)
		}
		switch t {
		case fLoad:
			if progress != nil && len(payload) == 4 && !progress(float32FromPayload(payload)) {
				return nil, c.failStart(fmt.Errorf("pipeline: loading the model: %w", llama.ErrCancelled))
			}
		case fHello:
			if err := decodeGob(payload, &c.hello); err != nil {
				return nil, c.failStart(err)
			}
			if c.hello.Err != nil {
				return nil, c.failStart(c.hello.Err.err())
			}
			_ = nc.SetReadDeadline(time.Time{})
			now := time.Now().UnixNano()
			c.lastFrame.Store(now)
			c.stepsAt.Store(now)
			go c.read()
			go c.watch()
			return c, nil
		}
	}
}

// failStart ends a child that did not start and returns why: err when the
// child said so (a load error) or a *CrashError when it died.
func (c *child) failStart(err error) error {
	c.nc.Close()
	exited := make(chan struct{})
	go func() {
		select {
		case <-exited:
		case <-time.After(2 * time.Second):
			_ = c.cmd.Process.Kill()
		}
	}()
	werr := c.cmd.Wait()
	close(exited)
	var re *remoteError
	if errors.As(err, &re) || errors.Is(err, llama.ErrCancelled) {
		return err
	}
	if werr != nil || err != nil {
		ce := c.crashError()
		ce.Stage = "load"
		return ce
	}
	return err
}

// ready is Pipeline.Ready.
func (s *supervisor) ready() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	switch {
	case s.draining:
		return ErrShuttingDown
	case s.closed:
		return ErrClosed
	case s.loopErr != nil:
		return s.loopErr
	case s.cur == nil:
		return fmt.Errorf("%w after: %w", ErrRestarting, s.lastErr)
	}
	return nil
}

func (s *supervisor) restartCount() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.restarts
}

// acquire returns the running child, waiting within ctx while it restarts.
func (s *supervisor) acquire(ctx context.Context) (*child, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	counted := false
	for {
		var err error
		switch {
		case s.draining:
			err = ErrShuttingDown
		case s.closed:
			err = ErrClosed
		case s.loopErr != nil:
			err = s.loopErr
		case s.cur != nil:
			if counted {
				s.waiting--
			}
			return s.cur, nil
		}
		if err != nil {
			if counted {
				s.waiting--
			}
			return nil, err
		}
		if !counted {
			if mw := s.hello.Engine.MaxWaiting; mw >= 0 && s.waiting >= mw {
				s.base.Engine.Overloaded++
				return nil, fmt.Errorf("pipeline: %d requests are waiting for the model's process to restart: %w", s.waiting, ErrOverloaded)
			}
			s.waiting++
			counted = true
		}
		ch := s.changed
		s.mu.Unlock()
		select {
		case <-ch:
			s.mu.Lock()
		case <-ctx.Done():
			s.mu.Lock()
			s.waiting--
			return nil, fmt.Errorf("pipeline: waiting for the model's process to restart: %w (%w)", ErrOverloaded, context.Cause(ctx))
		}
	}
}

// died is told that c died (or a restart failed, c nil) with err.
func (s *supervisor) died(c *child, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if c != nil {
		if s.cur == c {
			s.cur = nil
		}
		s.base.add(c.lastSnapshot())
		s.base.Engine.Failed += c.failedCalls
	}
	defer s.broadcast()
	if s.closed || (c != nil && c.stopping.Load()) {
		return
	}
	s.lastErr = err
	now := time.Now()
	keep := s.deaths[:0]
	for _, t := range s.deaths {
		if now.Sub(t) < s.opts.CrashLoopWindow {
			keep = append(keep, t)
		}
	}
	s.deaths = append(keep, now)
	if n := s.opts.CrashLoopDeaths; n > 0 && len(s.deaths) >= n {
		s.loopErr = fmt.Errorf("pipeline: %d deaths within %v, the last: %w: %w", len(s.deaths), s.opts.CrashLoopWindow, err, ErrCrashLoop)
		s.opts.Logger.Error("the model's process keeps dying: restarts stopped", "deaths", len(s.deaths), "window", s.opts.CrashLoopWindow, "err", err)
		return
	}
	delay := s.opts.RestartBackoff << (len(s.deaths) - 1)
	if delay > s.opts.MaxRestartBackoff || delay <= 0 {
		delay = s.opts.MaxRestartBackoff
	}
	s.opts.Logger.Warn("the model's process died: restarting", "err", err, "backoff", delay)
	s.wg.Add(1)
	go s.restart(delay)
}

// restart starts a child after delay.
func (s *supervisor) restart(delay time.Duration) {
	defer s.wg.Done()
	t := time.NewTimer(delay)
	defer t.Stop()
	select {
	case <-t.C:
	case <-s.stop:
		return
	}
	ctx, cancel := context.WithTimeout(s.ctx, s.opts.LoadTimeout)
	defer cancel()
	c, err := s.start(ctx, nil)
	if err != nil {
		if s.ctx.Err() == nil {
			s.died(nil, err)
		}
		return
	}
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		c.shutdown()
		return
	}
	c.mu.Lock()
	dead := c.dead
	c.mu.Unlock()
	if !dead { // else its death is being handled (another restart)
		s.cur = c
		s.restarts++
		s.broadcast()
	}
	s.mu.Unlock()
	s.opts.Logger.Info("the model's process restarted", "pid", c.pid)
}

// current returns the running child, or nil.
func (s *supervisor) current() *child {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.cur
}

// engineStats is Pipeline.EngineStats: the running child's counters (asked
// for now, or its last heartbeat's) plus those of the children before it.
func (s *supervisor) engineStats() engine.Stats {
	snap := s.snapshot()
	s.mu.Lock()
	defer s.mu.Unlock()
	st := snap.Engine
	b := s.base.Engine
	st.Submitted += b.Submitted
	st.Overloaded += b.Overloaded
	st.Completed += b.Completed
	st.Failed += b.Failed
	st.Steps += b.Steps
	st.TokensDecoded += b.TokensDecoded
	st.ReusedTokens += b.ReusedTokens
	st.CopiedPrefixes += b.CopiedPrefixes
	st.Waiting += s.waiting
	if st.KVCells == 0 {
		st.KVCells = s.hello.Engine.ContextSize
	}
	return st
}

// cacheStats is Pipeline.ImageCacheStats.
func (s *supervisor) cacheStats() mtmd.CacheStats {
	snap := s.snapshot()
	s.mu.Lock()
	defer s.mu.Unlock()
	st := snap.Cache
	st.Hits += s.base.Cache.Hits
	st.Misses += s.base.Cache.Misses
	st.Evictions += s.base.Cache.Evictions
	if st.MaxBytes == 0 {
		st.MaxBytes = s.base.Cache.MaxBytes
	}
	return st
}

// snapshot asks the running child for its counters (its last heartbeat's
// if it does not answer within a second); zero while none runs.
func (s *supervisor) snapshot() snapshot {
	c := s.current()
	if c == nil {
		return snapshot{}
	}
	if snap, ok := c.query(time.Second); ok {
		return snap
	}
	return c.lastSnapshot()
}

// overloaded is Pipeline.Overloaded: the calls in the child beyond its
// sequences, and those waiting for a restart, fill MaxWaiting.
func (s *supervisor) overloaded() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	mw := s.hello.Engine.MaxWaiting
	if mw < 0 {
		return false
	}
	n := s.waiting
	if s.cur != nil {
		s.cur.mu.Lock()
		n += max(0, len(s.cur.calls)-s.hello.Engine.Sequences)
		s.cur.mu.Unlock()
	}
	return n >= mw
}

// inFlight counts the calls in the child and waiting for one.
func (s *supervisor) inFlight() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := s.waiting
	if s.cur != nil {
		s.cur.mu.Lock()
		n += len(s.cur.calls)
		s.cur.mu.Unlock()
	}
	return n
}

// shutdown is Pipeline.Shutdown: no new calls, those in flight run to
// their end (or ctx's), then close.
func (s *supervisor) shutdown(ctx context.Context) error {
	s.mu.Lock()
	s.draining = true
	s.broadcast()
	s.mu.Unlock()
	t := time.NewTicker(5 * time.Millisecond)
	defer t.Stop()
	var err error
	for s.inFlight() > 0 && err == nil {
		select {
		case <-ctx.Done():
			err = ctx.Err()
		case <-t.C:
		}
	}
	s.close()
	return err
}

// close stops the child (its calls end with ErrClosed) and the restarts.
func (s *supervisor) close() {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return
	}
	s.closed = true
	c := s.cur
	s.cur = nil
	close(s.stop)
	s.cancel()
	s.broadcast()
	s.mu.Unlock()
	if c != nil {
		c.shutdown()
	}
	s.wg.Wait()
}

func (b *snapshot) add(s snapshot) {
	e := &b.Engine
	e.Submitted += s.Engine.Submitted
	e.Overloaded += s.Engine.Overloaded
	e.Completed += s.Engine.Completed
	e.Failed += s.Engine.Failed
	e.Steps += s.Engine.Steps
	e.TokensDecoded += s.Engine.TokensDecoded
	e.ReusedTokens += s.Engine.ReusedTokens
	e.CopiedPrefixes += s.Engine.CopiedPrefixes
	b.Cache.Hits += s.Cache.Hits
	b.Cache.Misses += s.Cache.Misses
	b.Cache.Evictions += s.Cache.Evictions
	b.Cache.MaxBytes = s.Cache.MaxBytes
}

// child is one child process and the calls it answers.
type child struct {
	s     *supervisor
	cmd   *exec.Cmd
	pid   int
	nc    net.Conn
	w     *wire
	log   *childLog
	hello hello

	mu          sync.Mutex
	calls       map[uint64]*call // in flight; nil once dead
	queries     map[uint64]chan snapshot
	nextID      uint64
	dead        bool
	crash       *CrashError // once dead
	last        snapshot
	failedCalls int64

	lastFrame atomic.Int64 // unix ns of the last frame read
	stepsAt   atomic.Int64 // unix ns when Steps last moved (or the child became busy)
	hung      atomic.Bool
	stopping  atomic.Bool   // close: its death is expected
	done      chan struct{} // closed once it is dead, reaped and its calls told
}

// call is one request in the child, as its caller reads it.
type call struct {
	id       uint64
	mu       sync.Mutex
	q        []callItem
	sig      chan struct{} // cap 1: items arrived
	decoding atomic.Bool   // a token came
}

// callItem is a token, image progress, the end, or the child's death.
type callItem struct {
	tok         llama.GeneratedToken
	done, total int // image progress when total > 0
	end         *wireEnd
	err         error
}

func (cl *call) push(it callItem) {
	cl.mu.Lock()
	cl.q = append(cl.q, it)
	cl.mu.Unlock()
	select {
	case cl.sig <- struct{}{}:
	default:
	}
}

func (cl *call) take(buf []callItem) []callItem {
	cl.mu.Lock()
	defer cl.mu.Unlock()
	buf = append(buf[:0], cl.q...)
	clear(cl.q)
	cl.q = cl.q[:0]
	return buf
}

// submit sends req to the child.
func (c *child) submit(req *wireRequest) (*call, error) {
	var b bytes.Buffer
	if err := gobEncode(&b, req); err != nil {
		return nil, fmt.Errorf("pipeline: the request cannot cross to the model's process: %v: %w", err, ErrInvalidInput)
	}
	c.mu.Lock()
	if c.dead {
		e := *c.crash
		e.Stage = "prompt"
		c.mu.Unlock()
		return nil, &e
	}
	c.nextID++
	cl := &call{id: c.nextID, sig: make(chan struct{}, 1)}
	c.calls[cl.id] = cl
	c.mu.Unlock()
	// A failed write means the child is dying: its death reaches cl.
	_ = c.w.send(fRequest, cl.id, b.Bytes())
	return cl, nil
}

func (c *child) forget(cl *call) {
	c.mu.Lock()
	delete(c.calls, cl.id)
	c.mu.Unlock()
}

func (c *child) cancel(cl *call) { _ = c.w.send(fCancel, cl.id, nil) }

func (c *child) lookup(id uint64) *call {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.calls[id]
}

func (c *child) lastSnapshot() snapshot {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.last
}

// setSnapshot records the child's counters; a step taken, or requests
// starting to run, resets the hang clock.
func (c *child) setSnapshot(snap snapshot) {
	c.mu.Lock()
	prev := c.last
	c.last = snap
	c.mu.Unlock()
	if snap.Engine.Steps != prev.Engine.Steps || prev.Engine.Active == 0 {
		c.stepsAt.Store(time.Now().UnixNano())
	}
}

// query asks the child for its counters.
func (c *child) query(wait time.Duration) (snapshot, bool) {
	ch := make(chan snapshot, 1)
	c.mu.Lock()
	if c.dead {
		c.mu.Unlock()
		return snapshot{}, false
	}
	c.nextID++
	id := c.nextID
	c.queries[id] = ch
	c.mu.Unlock()
	defer func() {
		c.mu.Lock()
		delete(c.queries, id)
		c.mu.Unlock()
	}()
	if c.w.send(fStats, id, nil) != nil {
		return snapshot{}, false
	}
	t := time.NewTimer(wait)
	defer t.Stop()
	select {
	case snap := <-ch:
		return snap, true
	case <-t.C:
	case <-c.done:
	}
	return snapshot{}, false
}

// read dispatches the child's frames until the socket ends, then handles
// the death.
func (c *child) read() {
	for {
		t, id, payload, err := c.w.recv()
		if err != nil {
			c.die()
			return
		}
		c.lastFrame.Store(time.Now().UnixNano())
		switch t {
		case fToken:
			tok, err := parseToken(payload)
			if cl := c.lookup(id); cl != nil && err == nil {
				if tok.ID >= 0 {
					cl.decoding.Store(true)
				}
				cl.push(callItem{tok: tok})
			}
		case fProgress:
			if cl := c.lookup(id); cl != nil && len(payload) == 8 {
				cl.push(callItem{done: int(u32(payload)), total: int(u32(payload[4:]))})
			}
		case fEnd:
			end := &wireEnd{}
			if err := decodeGob(payload, end); err != nil {
				end = &wireEnd{Err: toWire(fmt.Errorf("pipeline: an answer from the model's process cannot be read: %v", err)), Stop: llama.StopError}
			}
			c.mu.Lock()
			cl := c.calls[id]
			delete(c.calls, id)
			c.mu.Unlock()
			if cl != nil {
				cl.push(callItem{end: end})
			}
		case fBeat, fStats:
			var snap snapshot
			if decodeGob(payload, &snap) != nil {
				continue
			}
			c.setSnapshot(snap)
			if t == fStats {
				c.mu.Lock()
				ch := c.queries[id]
				c.mu.Unlock()
				if ch != nil {
					ch <- snap
				}
			}
		}
	}
}

// watch kills the child when it stops answering: no frame (heartbeats
// come every Supervisor.beat) for HangTimeout, or requests running and
// no decode step for HangTimeout.
func (c *child) watch() {
	hang := c.s.opts.HangTimeout
	t := time.NewTicker(max(c.s.opts.beat(), 10*time.Millisecond))
	defer t.Stop()
	for {
		select {
		case <-c.done:
			return
		case <-t.C:
		}
		now := time.Now().UnixNano()
		silent := time.Duration(now - c.lastFrame.Load())
		stuck := time.Duration(now - c.stepsAt.Load())
		busy := c.lastSnapshot().Engine.Active > 0
		if silent > hang || (busy && stuck > hang) {
			c.hung.Store(true)
			c.s.opts.Logger.Error("the model's process hangs: killing it", "pid", c.pid, "silent", silent.Round(time.Millisecond), "no_step", stuck.Round(time.Millisecond))
			_ = c.cmd.Process.Kill()
			return
		}
	}
}

// die handles the end of the socket: reap the child (killing it if it
// lingers), end every call in flight with the crash (ErrClosed when the
// pipeline closed it), tell the supervisor.
func (c *child) die() {
	c.nc.Close()
	exited := make(chan struct{})
	go func() {
		select {
		case <-exited:
		case <-time.After(2 * time.Second):
			_ = c.cmd.Process.Kill()
		}
	}()
	_ = c.cmd.Wait()
	close(exited)
	ce := c.crashError()
	c.mu.Lock()
	c.dead, c.crash = true, ce
	calls := c.calls
	c.calls = nil
	c.failedCalls = int64(len(calls))
	c.mu.Unlock()
	for _, cl := range calls {
		var err error = ErrClosed
		if !c.stopping.Load() {
			e := *ce
			e.Stage = "prompt"
			if cl.decoding.Load() {
				e.Stage = "decode"
			}
			err = &e
		}
		cl.push(callItem{err: err})
	}
	close(c.done)
	c.s.died(c, ce)
}

// shutdown closes the socket (the child exits) and waits for its end.
func (c *child) shutdown() {
	c.stopping.Store(true)
	c.nc.Close()
	<-c.done
}

// crashError describes the child's end, once reaped.
func (c *child) crashError() *CrashError {
	ce := &CrashError{PID: c.pid, Hung: c.hung.Load()}
	if st := c.cmd.ProcessState; st != nil {
		ce.ExitCode = st.ExitCode()
		if ws, ok := st.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			ce.Signal, ce.ExitCode = ws.Signal(), -1
		}
	}
	ce.Report, ce.Log = c.log.summary(8)
	if ce.Signal == 0 {
		if name, _, ok := strings.Cut(ce.Report, ":"); ok {
			ce.Signal = crashSignals[name]
		}
	}
	return ce
}

// childLog takes the child's stdout and stderr: whole lines go to the
// logger and a ring of the last ones; from a Go crash report on (a signal,
// "fatal error:", "panic:") only its first line is kept, not the goroutine
// dumps after it.
type childLog struct {
	logger *slog.Logger
	pid    int

	mu      sync.Mutex
	partial []byte
	lines   []string // the last ones before a crash report
	report  string
}

const childLogLines = 32

func (l *childLog) Write(b []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.partial = append(l.partial, b...)
	for {
		i := bytes.IndexByte(l.partial, '\n')
		if i < 0 {
			break
		}
		line := strings.TrimSpace(string(l.partial[:i]))
		l.partial = l.partial[i+1:]
		l.line(line)
	}
	if len(l.partial) > 64<<10 { // no newline for too long: a line of its own
		l.line(string(l.partial))
		l.partial = l.partial[:0]
	}
	return len(b), nil
}

func (l *childLog) line(line string) {
	if line == "" || l.report != "" {
		return
	}
	if isCrashLine(line) {
		l.report = line
		l.logger.Error("the model's process crashed", "pid", l.pid, "report", line)
		return
	}
	if len(l.lines) == childLogLines {
		copy(l.lines, l.lines[1:])
		l.lines = l.lines[:childLogLines-1]
	}
	l.lines = append(l.lines, line)
	l.logger.Warn(line, "source", "model process", "pid", l.pid)
}

func isCrashLine(line string) bool {
	if strings.HasPrefix(line, "fatal error:") || strings.HasPrefix(line, "panic:") {
		return true
	}
	name, _, ok := strings.Cut(line, ":")
	return ok && crashSignals[name] != 0
}

// summary returns the crash report's first line and the last n log lines
// (llama.cpp's and ggml's error lines first, when there are any).
func (l *childLog) summary(n int) (string, []string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	var errs []string
	for _, line := range l.lines {
		low := strings.ToLower(line)
		if strings.Contains(low, "error") || strings.Contains(line, "GGML_ASSERT") || strings.Contains(low, "abort") {
			errs = append(errs, line)
		}
	}
	keep := l.lines
	if len(errs) > 0 {
		keep = errs
	}
	if len(keep) > n {
		keep = keep[len(keep)-n:]
	}
	return l.report, append([]string(nil), keep...)
}

// remoteAnswer is answer for a ChildProcess pipeline: the child renders,
// tokenizes and generates; the tokens come back here.
func (p *Pipeline) remoteAnswer(ctx context.Context, msgs []template.Message, images []*mtmd.Image, opts GenerateOptions, maxPos int,
	start time.Time, resp *Response, yield func(llama.GeneratedToken, error) bool) error {
	fail := func(err error) error {
		resp.StopReason = llama.StopError
		if errors.Is(err, llama.ErrCancelled) {
			resp.StopReason = llama.StopCancelled
		}
		yield(llama.GeneratedToken{}, err)
		return err
	}
	if opts.Tools != nil || opts.Logprobs || opts.TopLogprobs > 0 {
		return fail(ErrNotInChildProcess)
	}
	maxTokens, err := opts.maxTokens()
	if err != nil {
		return fail(err)
	}
	req := &wireRequest{Msgs: msgs, MaxTokens: maxTokens, Sampler: opts.Sampler, Stop: opts.Stop, ReturnFullText: opts.ReturnFullText,
		Progress: opts.ImageProgress != nil, MaxPos: maxPos, Images: make([]wireImage, len(images))}
	for i, im := range images {
		req.Images[i] = wireImage{W: im.Width(), H: im.Height(), RGB: im.RGB()}
	}
	c, err := p.sup.acquire(ctx)
	if err != nil {
		return fail(err)
	}
	cl, err := c.submit(req)
	if err != nil {
		return fail(err)
	}
	defer c.forget(cl)
	var text strings.Builder
	var toks []llama.Token
	var items []callItem
	done := ctx.Done()
	broke := false
	for {
		items = cl.take(items)
		if len(items) == 0 {
			select {
			case <-cl.sig:
			case <-done:
				c.cancel(cl)
				done = nil
			}
			continue
		}
		for _, it := range items {
			switch {
			case it.err != nil: // the child died, or the pipeline closed
				resp.Text, resp.answer, resp.Tokens = text.String(), text.String(), toks
				resp.Stats.GeneratedTokens, resp.Stats.Total = len(toks), time.Since(start)
				if broke {
					resp.StopReason = llama.StopBreak
					return nil
				}
				return fail(it.err)
			case it.end != nil:
				e := it.end
				ttft := resp.Stats.TimeToFirstToken
				resp.Prompt, resp.Stats, resp.Tokens, resp.StopReason, resp.Text, resp.answer = e.Prompt, e.Stats, e.Tokens, e.Stop, e.Text, e.Answer
				resp.Stats.TimeToFirstToken, resp.Stats.Total = ttft, time.Since(start)
				if broke {
					resp.Tokens, resp.answer, resp.StopReason = toks, text.String(), llama.StopBreak
					resp.Text = resp.answer
					if opts.ReturnFullText {
						resp.Text = e.Prompt + resp.answer
					}
					resp.Stats.GeneratedTokens = len(toks)
					return nil
				}
				if err := e.Err.err(); err != nil {
					if ctx.Err() != nil && errors.Is(err, llama.ErrCancelled) {
						err = fmt.Errorf("pipeline: %w (%w)", llama.ErrCancelled, context.Cause(ctx))
					}
					yield(llama.GeneratedToken{}, err)
					return err
				}
				return nil
			case it.total > 0:
				if !broke && opts.ImageProgress != nil {
					opts.ImageProgress(it.done, it.total)
				}
			default:
				if broke {
					continue
				}
				tok := it.tok
				if resp.Stats.TimeToFirstToken == 0 && tok.ID >= 0 {
					resp.Stats.TimeToFirstToken = time.Since(start)
				}
				text.WriteString(tok.Text)
				if tok.ID >= 0 {
					toks = append(toks, tok.ID)
				}
				if !yield(tok, nil) {
					// Wait for the end, as the engine does: the response
					// is then complete.
					broke = true
					c.cancel(cl)
					done = nil
				}
			}
		}
	}
}
