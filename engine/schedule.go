package engine

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync/atomic"
	"time"

	"github.com/vlm-go/vlm/llama"
)

// stallHook, set by tests, runs on the scheduler's goroutine when it finds
// a stream's buffer full, before it marks the stream stalled.
var stallHook atomic.Pointer[func()]

// schedule is the engine's goroutine: it admits waiting requests, steps
// the active ones and ends them, until Close.
func (e *Engine) schedule() {
	defer close(e.done)
	for {
		e.mu.Lock()
		closed, draining := e.closed, e.draining
		e.queue = append(e.queue, e.waiting...)
		clear(e.waiting)
		e.waiting = e.waiting[:0]
		e.mu.Unlock()
		if closed {
			e.shutdown()
			return
		}
		// xmu: Perf reads the context between steps.
		e.xmu.Lock()
		e.dropCancelled()
		e.admit()
		e.countCells()
		worked := e.step()
		e.compact()
		e.countCells()
		e.xmu.Unlock()
		if draining && len(e.queue) == 0 && len(e.active) == 0 {
			e.drainOnce.Do(func() { close(e.drained) })
		}
		if !worked {
			<-e.wake
		}
	}
}

// countCells publishes the requests waiting and running and the KV cells
// reserved by running requests and kept by free sequences (Stats), after
// admission and after each step (what a step ended is not counted while the
// scheduler sleeps).
func (e *Engine) countCells() {
	reserved, cached := 0, 0
	for _, r := range e.active {
		reserved += r.reserve
	}
	for _, s := range e.slots {
		if s.req == nil {
			cached += cells(s.units)
		}
	}
	// The cells first: Stats loads the requests first, so a reader that
	// sees a request running also sees its cells.
	e.counters.kvReserved.Store(int64(reserved))
	e.counters.kvCached.Store(int64(cached))
	e.counters.waiting.Store(int32(len(e.queue)))
	e.counters.active.Store(int32(len(e.active)))
}

// compact removes ended requests from the active list.
func (e *Engine) compact() {
	e.active = slices.DeleteFunc(e.active, func(r *request) bool { return r.over.Load() })
	e.counters.active.Store(int32(len(e.active)))
}

// shutdown ends every request with ErrClosed.
func (e *Engine) shutdown() {
	for _, r := range e.queue {
		e.finish(r, fmt.Errorf("engine closed while the request waited: %w", ErrClosed)) // and its followers
	}
	for _, r := range e.active {
		if !r.over.Load() {
			e.finish(r, fmt.Errorf("engine closed while the request ran: %w", ErrClosed))
		}
	}
	e.queue, e.active = nil, nil
	e.counters.waiting.Store(0)
	e.counters.active.Store(0)
}

// cancelled returns the error of a cancelled request (nil for a reader
// that stopped iterating) and whether it was cancelled.
func cancelled(r *request) (error, bool) {
	if r.ctx.Err() == nil {
		return nil, false
	}
	cause := context.Cause(r.ctx)
	if errors.Is(cause, errBreak) {
		return nil, true
	}
	return fmt.Errorf("%w (%w)", llama.ErrCancelled, cause), true
}

// dropCancelled ends the requests whose context was cancelled. What their
// sequences hold stays valid (it changes only within a step).
func (e *Engine) dropCancelled() {
	e.queue = slices.DeleteFunc(e.queue, func(r *request) bool {
		for _, f := range r.followers {
			if err, ok := cancelled(f); ok {
				e.finish(f, err)
			}
		}
		if err, ok := cancelled(r); ok {
			e.finish(r, err) // and its followers
			return true
		}
		return false
	})
	for _, r := range e.active {
		if err, ok := cancelled(r); ok && !r.over.Load() {
			e.finish(r, err)
		}
	}
	e.compact()
}

// admit gives waiting requests a sequence, in submission order, while a
// sequence is free and the KV cache has room for the head of the queue.
func (e *Engine) admit() {
	for len(e.queue) > 0 {
		r := e.queue[0]
		var free []*slot
		for _, s := range e.slots {
			if s.req == nil {
				free = append(free, s)
			}
		}
		// SubmitN's other choices need a sequence each, now.
		var followers []*request
		reserve := r.reserve
		for _, f := range r.followers {
			if !f.over.Load() {
				followers = append(followers, f)
				reserve += f.reserve
			}
		}
		if len(free) < 1+len(followers) {
			return
		}
		used := 0
		for _, a := range e.active {
			used += a.reserve
		}
		if used+reserve > e.opts.ContextSize {
			return // wait for running requests to end
		}
		src, k := e.bestPrefix(r)
		dst := src
		if k == 0 || src.req != nil {
			dst = leastValuable(free)
		}
		group := []*slot{dst}
		for range followers {
			rest := slices.DeleteFunc(slices.Clone(free), func(s *slot) bool { return slices.Contains(group, s) })
			group = append(group, leastValuable(rest))
		}
		// Make room: forget what free sequences hold, least recently used
		// first, until the running requests, this one and what is kept fit.
		kept := 0
		for _, s := range free {
			if !slices.Contains(group, s) {
				kept += cells(s.units)
			}
		}
		for used+reserve+kept > e.opts.ContextSize {
			victim := (*slot)(nil)
			for _, s := range free {
				if !slices.Contains(group, s) && len(s.units) > 0 && (victim == nil || s.lastUsed < victim.lastUsed) {
					victim = s
				}
			}
			if victim == nil {
				break
			}
			kept -= cells(victim.units)
			e.forget(victim)
		}
		e.queue = e.queue[1:]
		e.start(r, dst, src, k)
		for i, f := range followers {
			e.follow(f, group[1+i])
		}
	}
}

// follow gives a SubmitN choice its sequence, where it waits for its
// leader's prompt (fork).
func (e *Engine) follow(f *request, s *slot) {
	e.forget(s)
	s.req = f
	f.seq = s
	f.state = stateFollowing
	f.admitted = time.Now()
	f.res.Sequence = s.id
	f.res.QueueTime = f.admitted.Sub(f.submitted)
	e.active = append(e.active, f)
}

// fork starts leader's other choices from its evaluated prompt: each
// sequence gets a copy of the leader's (shared KV cells) and samples its
// first token from the leader's output row.
func (e *Engine) fork(leader *request) {
	leader.forked = true
	for _, f := range leader.followers {
		if f.over.Load() {
			continue
		}
		if f.state != stateFollowing {
			continue // never admitted: ended meanwhile
		}
		if err := e.x.CopySequence(leader.seq.id, f.seq.id, 0, -1); err != nil {
			e.finish(f, err)
			continue
		}
		f.seq.units = slices.Clone(leader.seq.units)
		f.next, f.pos = len(f.units), leader.pos
		f.res.CachedTokens = f.res.PromptTokens
		e.counters.reused.Add(int64(f.res.CachedTokens))
		e.counters.copied.Add(1)
		e.counters.forked.Add(1)
		// The row is the leader's for this one sample; -1 after it, so
		// that the step that decoded the leader's prompt does not take
		// this choice for one of its decoded tokens.
		f.row = leader.row
		e.promptDone(f)
		f.row = -1
	}
}

// leastValuable picks the free sequence to reuse: an empty one, else the
// least recently used.
func leastValuable(free []*slot) *slot {
	best := free[0]
	for _, s := range free[1:] {
		if (len(s.units) == 0) != (len(best.units) == 0) {
			if len(s.units) == 0 {
				best = s
			}
			continue
		}
		if s.lastUsed < best.lastUsed {
			best = s
		}
	}
	return best
}

// forget empties a sequence of the KV cache.
func (e *Engine) forget(s *slot) {
	_ = e.x.RemovePositions(s.id, -1, -1)
	s.units = nil
}

// bestPrefix finds the sequence sharing the longest prefix with r's prompt
// and how many units; at least one unit is left to evaluate, so that the
// last one yields logits. Free sequences win ties (no copy).
func (e *Engine) bestPrefix(r *request) (*slot, int) {
	var best *slot
	bestK := 0
	for _, s := range e.slots {
		k := 0
		for k < len(r.units)-1 && k < len(s.units) && r.units[k].same(s.units[k]) {
			k++
		}
		if k > bestK || (k == bestK && k > 0 && best.req != nil && s.req == nil) {
			best, bestK = s, k
		}
	}
	return best, bestK
}

// start runs r in sequence dst, reusing k prompt units held by src.
func (e *Engine) start(r *request, dst, src *slot, k int) {
	pos := int32(0)
	for _, u := range r.units[:k] {
		pos += u.npos
	}
	if k > 0 && src == dst {
		if err := e.x.RemovePositions(dst.id, pos, -1); err != nil {
			// A partial removal can fail (recurrent models): start over.
			e.forget(dst)
			k, pos = 0, 0
		}
		dst.units = dst.units[:k]
	} else {
		e.forget(dst)
		if k > 0 {
			if err := e.x.CopySequence(src.id, dst.id, 0, pos); err != nil {
				k, pos = 0, 0
			} else {
				dst.units = slices.Clone(src.units[:k])
				e.counters.copied.Add(1)
			}
		}
	}
	dst.req = r
	r.seq = dst
	r.next, r.pos, r.state = k, pos, statePrefill
	r.admitted = time.Now()
	r.res.Sequence = dst.id
	r.res.QueueTime = r.admitted.Sub(r.submitted)
	for _, u := range r.units[:k] {
		r.res.CachedTokens += u.n
	}
	e.counters.reused.Add(int64(r.res.CachedTokens))
	for _, u := range r.units[k:] {
		if u.tok < 0 {
			r.imagesTotal++
		}
	}
	e.active = append(e.active, r)
}

// setThreads leaves the encoder its cores while it runs, decided before
// every step (so at least once per tile). An encoder at the lowest CPU
// priority (mtmd.Projector.IdlePriority) runs with every thread and gives
// way by itself: the engine then decodes with half the threads, which get
// their cores at once, and the encoder keeps the other half (with every
// thread for text steps it would starve: requests arriving one after
// another kept a 17-tile picture from finishing for minutes). Any other
// encoder keeps its own threads' worth of cores (ggml's spinning threads
// collapse when oversubscribed).
func (e *Engine) setThreads() {
	want := e.opts.Threads
	if e.enc.busy.Load() && e.proj != nil {
		if e.proj.IdlePriority() {
			want = max(1, e.opts.Threads/2)
		} else {
			want = max(1, e.opts.Threads-e.proj.Threads())
		}
	}
	if want != e.threads {
		if e.x.SetThreads(want, want) == nil {
			e.threads = want
		}
	}
}

// step decodes one batch: a token of every decoding sequence and the next
// text of the prompts, then one image chunk. It reports whether it did
// anything.
func (e *Engine) step() bool {
	e.clock++
	b := e.batch
	b.Clear()
	budget := e.x.Options().BatchSize
	for _, r := range e.active {
		r.row, r.pending = -1, 0
		if r.unread.Load() >= int32(cap(r.events)) {
			if h := stallHook.Load(); h != nil {
				(*h)()
			}
			// Mark the stream stalled, then look again: a reader that
			// took events in between either sees the mark (it takes an
			// event, then looks at the mark, and wakes the scheduler) or
			// left room that this second look sees.
			r.stalled.Store(true)
			if r.unread.Load() >= int32(cap(r.events)) {
				continue
			}
		}
		r.stalled.Store(false)
		if r.state != stateDecoding || budget == 0 {
			continue
		}
		if err := b.Add(r.lastTok, r.gen.Pos(), true, r.seq.id); err != nil {
			e.finish(r, err)
			continue
		}
		r.row = b.Len() - 1
		budget--
	}
	for _, r := range e.active {
		if r.state != statePrefill || r.stalled.Load() || r.over.Load() {
			continue
		}
		for budget > 0 && r.next+r.pending < len(r.units) {
			i := r.next + r.pending
			u := r.units[i]
			if u.tok < 0 {
				break
			}
			last := i == len(r.units)-1
			if err := b.Add(u.tok, r.pos+int32(r.pending), last, r.seq.id); err != nil {
				e.finish(r, err)
				break
			}
			if last {
				r.row = b.Len() - 1
			}
			r.pending++
			budget--
		}
	}
	worked := false
	if b.Len() > 0 {
		worked = true
		e.setThreads()
		err := e.x.Decode(e.runCtx, b)
		e.counters.steps.Add(1)
		if err != nil {
			e.decodeFailed(err)
			return true
		}
		e.counters.decoded.Add(int64(b.Len()))
		for _, r := range e.active {
			if r.over.Load() {
				continue
			}
			switch {
			case r.state == statePrefill && r.pending > 0:
				r.seq.units = append(r.seq.units, r.units[r.next:r.next+r.pending]...)
				r.next += r.pending
				r.pos += int32(r.pending)
				r.res.EvaluatedTokens += r.pending
				r.pending = 0
				if r.next == len(r.units) {
					e.promptDone(r)
				}
			case r.state == stateDecoding && r.row >= 0:
				r.seq.units = append(r.seq.units, unit{tok: r.lastTok, n: 1, npos: 1})
				r.gen.Decoded()
				r.pos = r.gen.Pos()
				e.sample(r)
			}
		}
	}
	if e.imageStep() {
		worked = true
	}
	return worked
}

// promptDone starts r's answer: its last prompt entry's logits are at r.row.
func (e *Engine) promptDone(r *request) {
	if len(r.followers) > 0 && !r.forked {
		e.fork(r)
	}
	r.state = stateDecoding
	r.res.PrefillTime = time.Since(r.admitted)
	o := r.genOpts
	o.Pos = r.pos
	r.gen = llama.NewGeneration(e.model.Vocab(), o)
	e.sample(r)
}

// sample picks r's next token from its output row and delivers it.
func (e *Engine) sample(r *request) {
	var lse float32
	if r.logprobs {
		// Before sampling: the model's own distribution.
		var err error
		if r.logits, err = e.x.LogitsInto(r.row, r.logits); err != nil {
			e.finish(r, err)
			return
		}
		lse = llama.LogSumExp(r.logits)
	}
	tok, err := r.smp.Sample(e.x, r.row)
	if err != nil {
		e.finish(r, err)
		return
	}
	out, ended, err := r.gen.Add(tok)
	if err != nil {
		e.finish(r, err)
		return
	}
	if r.logprobs && out.ID >= 0 {
		out.Logprobs = &llama.Logprobs{Logprob: r.logits[tok] - lse, Top: llama.TopLogprobs(r.logits, lse, r.topN, nil)}
	}
	if out.ID >= 0 || out.Text != "" {
		if r.firstTok.IsZero() {
			r.firstTok = time.Now()
			r.res.TimeToFirstToken = r.firstTok.Sub(r.submitted)
		}
		r.send(event{tok: out}) // room: checked at the step's start, one event per step
	}
	switch {
	case ended:
		e.finish(r, nil)
	case r.gen.AtMax():
		e.end(r, llama.StopMaxTokens)
	case r.gen.Pos()+1 >= r.maxPos:
		e.end(r, llama.StopCacheFull)
	default:
		r.lastTok = tok
	}
}

// end ends r's answer for reason; held-back text becomes the stream's
// last token.
func (e *Engine) end(r *request, reason llama.StopReason) {
	if tail, ok := r.gen.End(reason); ok {
		r.tail = &tail
	}
	e.finish(r, nil)
}

// imageStep decodes the next image chunk of one prefilling request whose
// embeddings are ready (round robin over the requests), and reports
// whether it did.
func (e *Engine) imageStep() bool {
	n := len(e.active)
	for j := range n {
		i := (e.imageRR + j) % n
		r := e.active[i]
		if r.over.Load() || r.state != statePrefill || r.stalled.Load() || r.next >= len(r.units) || r.units[r.next].tok >= 0 {
			continue
		}
		u := r.units[r.next]
		embd, err := r.embeddings(u.chunk)
		if err != nil {
			e.finish(r, err)
			continue
		}
		if embd == nil {
			continue // being encoded
		}
		e.imageRR = i + 1
		e.setThreads()
		next, err := e.proj.EvalImageChunk(e.runCtx, e.x, r.list[u.chunk], embd, r.pos, r.seq.id)
		e.counters.steps.Add(1)
		if err != nil {
			if e.runCtx.Err() != nil {
				return true // closing
			}
			// Part of the image may be in the cache: drop it.
			_ = e.x.RemovePositions(r.seq.id, r.pos, -1)
			if errors.Is(err, llama.ErrContextFull) && e.evictFree() {
				return true // try again next step
			}
			e.finish(r, err)
			return true
		}
		r.seq.units = append(r.seq.units, u)
		r.next++
		r.pos = next
		r.res.EvaluatedTokens += u.n
		r.imagesDone++
		r.send(event{imageDone: r.imagesDone, imageOuts: r.imagesTotal})
		return true
	}
	return false
}

// evictFree forgets what every free sequence holds; it reports whether
// there was anything.
func (e *Engine) evictFree() bool {
	any := false
	for _, s := range e.slots {
		if s.req == nil && len(s.units) > 0 {
			e.forget(s)
			any = true
		}
	}
	return any
}

// decodeFailed handles a failed token batch. What of it the KV cache
// holds is removed: nothing for a full cache in the pinned llama.cpp (it
// places every ubatch before it computes any), the ubatches computed
// before a failed one otherwise. A full cache first costs the free
// sequences what they hold, then ends the longest running answer
// (StopCacheFull); other errors fail every request of the batch.
func (e *Engine) decodeFailed(err error) {
	if e.runCtx.Err() != nil {
		return // closing
	}
	var in []*request
	for _, r := range e.active {
		if !r.over.Load() && (r.row >= 0 || r.pending > 0) {
			in = append(in, r)
			// The batch held r's positions from r.pos on.
			_ = e.x.RemovePositions(r.seq.id, r.pos, -1)
		}
		r.pending, r.row = 0, -1
	}
	if errors.Is(err, llama.ErrContextFull) {
		if e.evictFree() {
			return
		}
		var longest *request
		for _, r := range in {
			if longest == nil || r.pos > longest.pos {
				longest = r
			}
		}
		if longest != nil {
			if longest.state == stateDecoding {
				e.end(longest, llama.StopCacheFull)
			} else {
				e.finish(longest, fmt.Errorf("the KV cache is full (%d cells): %w", e.opts.ContextSize, err))
			}
		}
		return
	}
	for _, r := range in {
		e.finish(r, err)
	}
}

// finish ends r: err nil for an answer; the stream closes.
func (e *Engine) finish(r *request, err error) {
	if r.over.Swap(true) {
		return
	}
	if r.gen != nil {
		if err != nil {
			r.gen.Fail(stopReason(err))
		} else if !r.gen.Done() {
			r.gen.Fail(llama.StopBreak) // the reader stopped
		}
		r.res.GenerateResult = r.gen.Result()
	} else {
		r.res.GenerateResult = llama.GenerateResult{NextPos: r.pos, Reason: stopReason(err)}
	}
	r.res.Err = err
	if !r.firstTok.IsZero() {
		r.res.DecodeTime = time.Since(r.firstTok)
	}
	r.embMu.Lock()
	r.res.ImagesEncoded, r.res.ImagesCached, r.res.EncodeTime = r.encoded, r.encCached, r.encodeTime
	r.embMu.Unlock()
	if r.seq != nil {
		r.seq.req = nil
		r.seq.lastUsed = e.clock
	}
	if err != nil {
		e.counters.failed.Add(1)
	} else {
		e.counters.completed.Add(1)
	}
	if !r.forked {
		// SubmitN's other choices wait for this one's prompt: they end too.
		for _, f := range r.followers {
			ferr := err
			if ferr == nil {
				ferr = fmt.Errorf("%w: the first choice's reader stopped before the prompt was evaluated", llama.ErrCancelled)
			}
			e.finish(f, fmt.Errorf("the first choice ended before the prompt was evaluated: %w", ferr))
		}
		r.forked = true
	}
	r.stopWake()
	r.smp.Close()
	// Before events: a reader that saw the end finds res written, and
	// closes Done itself.
	close(r.finished)
	r.markEnded()
	close(r.events)
	r.cancelCtx(nil)
	r.release()
}

// stopReason is the StopReason of a request that ended with err (nil: the
// reader stopped).
func stopReason(err error) llama.StopReason {
	switch {
	case err == nil:
		return llama.StopBreak
	case errors.Is(err, llama.ErrCancelled):
		return llama.StopCancelled
	}
	return llama.StopError
}
