package engine

// SetStallHook makes the scheduler call f when it finds a stream's buffer
// full, before it marks the stream stalled; the returned func removes it.
func SetStallHook(f func()) (restore func()) {
	stallHook.Store(&f)
	return func() { stallHook.Store(nil) }
}

// DrainWake takes a wake-up left pending for the scheduler, if any, so
// that the next one it waits for has to come from someone else.
func DrainWake(e *Engine) {
	select {
	case <-e.wake:
	default:
	}
}
