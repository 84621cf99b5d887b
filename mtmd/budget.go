package mtmd

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"runtime/debug"
	"sync"
	"time"
)

// MemoryBudget bounds the bytes that image decodes hold at once (their
// ImageInfo.DecodeBytes), across goroutines: a process serving requests
// shares one, so that a burst of large images decodes a few at a time
// instead of all at once. Waiters are served in order. Safe for concurrent
// use; a nil *MemoryBudget is no bound.
type MemoryBudget struct {
	mu          sync.Mutex
	limit       int64
	used        int64
	waiters     []*budgetWaiter
	lastFree    time.Time
	freePending bool // a freeIfIdle is scheduled
}

type budgetWaiter struct {
	n     int64
	ready chan struct{}
}

// NewMemoryBudget returns a budget of limit bytes (> 0).
func NewMemoryBudget(limit int64) *MemoryBudget { return &MemoryBudget{limit: limit} }

// Limit returns the budget's bytes.
func (b *MemoryBudget) Limit() int64 {
	if b == nil {
		return 0
	}
	return b.limit
}

// InUse returns the bytes held now.
func (b *MemoryBudget) InUse() int64 {
	if b == nil {
		return 0
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.used
}

// Acquire takes info.DecodeBytes from the budget, waiting while it is busy
// (see DecodeImageContext for the errors). Give them back with Release.
func (b *MemoryBudget) Acquire(ctx context.Context, info ImageInfo) error {
	if b == nil {
		return nil
	}
	n := info.DecodeBytes
	if n > b.limit {
		return &ImageMemoryError{Scope: "budget", Images: 1, Largest: info, Bytes: n, Limit: b.limit}
	}
	b.mu.Lock()
	if len(b.waiters) == 0 && b.used+n <= b.limit {
		b.used += n
		b.mu.Unlock()
		return nil
	}
	w := &budgetWaiter{n: n, ready: make(chan struct{})}
	b.waiters = append(b.waiters, w)
	used := b.used
	b.mu.Unlock()
	start := time.Now()
	select {
	case <-w.ready:
		return nil
	case <-ctx.Done():
	}
	b.mu.Lock()
	select {
	case <-w.ready: // granted meanwhile: give it back
		b.mu.Unlock()
		b.Release(n)
	default:
		for i, x := range b.waiters {
			if x == w {
				b.waiters = append(b.waiters[:i], b.waiters[i+1:]...)
				break
			}
		}
		b.grant() // the head may have been this waiter
		b.mu.Unlock()
	}
	err := ctx.Err()
	if errors.Is(err, context.DeadlineExceeded) {
		return fmt.Errorf("%s image %d×%d: waited %v for %d bytes of the image memory budget (%d of %d in use): %w (%w)",
			info.Format, info.Width, info.Height, time.Since(start).Round(time.Millisecond), n, used, b.limit, ErrBudgetBusy, err)
	}
	return fmt.Errorf("%w (%w)", ErrCancelled, err)
}

// grant wakes the waiters that now fit, in order; b.mu is held.
func (b *MemoryBudget) grant() {
	for len(b.waiters) > 0 && b.used+b.waiters[0].n <= b.limit {
		w := b.waiters[0]
		b.waiters = b.waiters[1:]
		b.used += w.n
		close(w.ready)
	}
}

// bigRelease is the size from which a release collects garbage first, so
// that the budget bounds the heap (Go frees a decoder's buffers only at the
// next collection, which a small heap's pacing can put after the next big
// allocation).
const bigRelease = 16 << 20

// Release gives back n bytes taken with Acquire. After a large decode it
// runs the garbage collector first, so the next decode reuses the memory
// instead of adding to it; when the budget becomes idle it also returns
// freed memory to the operating system (at most once a second), so that
// the process's RSS falls back after a burst (a release within a second of
// the last return schedules one for the end of that second).
func (b *MemoryBudget) Release(n int64) {
	if b == nil {
		return
	}
	if n >= bigRelease {
		runtime.GC()
	}
	b.mu.Lock()
	b.used -= n
	b.grant()
	free := false
	if b.used == 0 && n >= bigRelease {
		if since := time.Since(b.lastFree); since >= time.Second {
			free, b.lastFree = true, time.Now()
		} else if !b.freePending {
			b.freePending = true
			time.AfterFunc(time.Second-since, b.freeIfIdle)
		}
	}
	b.mu.Unlock()
	if free {
		debug.FreeOSMemory()
	}
}

// freeIfIdle returns freed memory to the operating system if no decode
// holds the budget: the end of a burst whose last release came less than a
// second after the previous return.
func (b *MemoryBudget) freeIfIdle() {
	b.mu.Lock()
	b.freePending = false
	idle := b.used == 0
	if idle {
		b.lastFree = time.Now()
	}
	b.mu.Unlock()
	if idle {
		debug.FreeOSMemory()
	}
}
