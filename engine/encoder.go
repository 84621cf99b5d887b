package engine

import (
	"github.com/vlm-go/vlm/mtmd"
	"sync"
	"sync/atomic"
	"time"
)

// encoder runs the vision encoder for queued requests on its own
// goroutine, in submission order, so that the scheduler goes on decoding
// the other sequences while an image is encoded.
type encoder struct {
	e       *Engine
	mu      sync.Mutex
	queue   []*request
	stopped bool
	wake    chan struct{}
	busy    atomic.Bool // encoding now: the scheduler leaves it cores
}

func (c *encoder) init(e *Engine) {
	c.e = e
	c.wake = make(chan struct{}, 1)
}

func (c *encoder) add(r *request) {
	c.mu.Lock()
	c.queue = append(c.queue, r)
	c.mu.Unlock()
	select {
	case c.wake <- struct{}{}:
	default:
	}
}

func (c *encoder) stop() {
	c.mu.Lock()
	c.stopped = true
	c.mu.Unlock()
	select {
	case c.wake <- struct{}{}:
	default:
	}
}

// run encodes every image chunk of each queued request; a request that
// ended (cancelled, failed) is dropped without encoding the rest.
func (c *encoder) run() {
	defer close(c.e.encDone)
	for {
		c.mu.Lock()
		if len(c.queue) == 0 {
			stopped := c.stopped
			c.mu.Unlock()
			if stopped {
				return
			}
			<-c.wake
			continue
		}
		r := c.queue[0]
		c.queue[0] = nil
		c.queue = c.queue[1:]
		stopped := c.stopped
		c.mu.Unlock()
		if !stopped {
			c.encode(r)
		}
		r.release()
	}
}

func (c *encoder) encode(r *request) {
	for i, ch := range r.list {
		if ch.Type != mtmd.ChunkImage {
			continue
		}
		if r.over.Load() || r.ctx.Err() != nil {
			return
		}
		t0 := time.Now()
		c.busy.Store(true)
		embd, encoded, err := c.e.proj.ImageEmbeddings(r.ctx, r.chunks, i)
		c.busy.Store(false)
		r.embMu.Lock()
		if err != nil {
			r.encErr = err
		} else {
			r.embd[i] = embd
			if encoded {
				r.encoded++
				r.encodeTime += time.Since(t0)
			} else {
				r.encCached++
			}
		}
		r.embMu.Unlock()
		c.e.wakeUp()
		if err != nil {
			return
		}
	}
}
