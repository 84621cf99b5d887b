package engine

// SetStallHook makes the scheduler call f when it finds a stream's buffer
// full, before it marks the stream stalled; the returned func removes it.
func SetStallHook(f func()) (restore func()) {
	stallHook.Store(&f)
	return func() { stallHook.Store(nil) }
}
