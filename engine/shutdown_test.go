package engine_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/vlm-go/vlm/engine"
	"github.com/vlm-go/vlm/internal/testmodel"
	"github.com/vlm-go/vlm/llama"
)

// untilRefused submits requests with a cancelled ctx (harmless if taken)
// until Submit refuses, and returns its error.
func untilRefused(t *testing.T, e *engine.Engine, p pair) error {
	t.Helper()
	dead, cancel := context.WithCancel(context.Background())
	cancel()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		if _, err := e.Submit(dead, engine.Request{Tokens: textTokens(t, p, 4, 9)}); err != nil {
			return err
		}
		time.Sleep(time.Millisecond)
	}
	t.Fatal("Submit still takes requests after Shutdown")
	return nil
}

// TestShutdownAnswersWhatItHas: after Shutdown, Submit refuses with
// ErrShuttingDown (an ErrClosed); the running and the waiting request are
// answered in full; then the engine is closed.
func TestShutdownAnswersWhatItHas(t *testing.T) {
	p := loadPair(t, testmodel.ProjectorMLP)
	e := newEngine(t, p, engine.Options{Sequences: 1, SequenceLength: 256, StreamBuffer: 2})
	var streams []*engine.Stream
	for i := range 2 { // one runs, one waits for the sequence; nobody reads yet
		s, err := e.Submit(context.Background(), engine.Request{Tokens: textTokens(t, p, 8, i), MaxTokens: 20, Sampler: samplerIgnoreEOG(p)})
		require.NoError(t, err)
		streams = append(streams, s)
	}
	shut := make(chan error, 1)
	go func() { shut <- e.Shutdown(context.Background()) }()
	err := untilRefused(t, e, p)
	require.ErrorIs(t, err, engine.ErrShuttingDown)
	require.ErrorIs(t, err, engine.ErrClosed)
	select {
	case err := <-shut:
		t.Fatalf("Shutdown returned (%v) before its requests were answered", err)
	case <-time.After(50 * time.Millisecond):
	}
	for i, s := range streams {
		res := s.Wait()
		require.NoError(t, res.Err, "request %d", i)
		assert.Equal(t, llama.StopMaxTokens, res.Reason, "request %d", i)
		assert.Len(t, res.Tokens, 20, "request %d", i)
	}
	require.NoError(t, <-shut)
	_, err = e.Submit(context.Background(), engine.Request{Tokens: textTokens(t, p, 8, 5)})
	require.ErrorIs(t, err, engine.ErrClosed)
	_, err = e.Perf()
	require.ErrorIs(t, err, engine.ErrClosed)
	require.NoError(t, e.Shutdown(context.Background()), "again, after the end")
}

// TestShutdownDeadline: requests still running when Shutdown's ctx ends
// are ended as by Close, and Shutdown returns the ctx's error.
func TestShutdownDeadline(t *testing.T) {
	p := loadPair(t, testmodel.ProjectorMLP)
	e := newEngine(t, p, engine.Options{Sequences: 1, SequenceLength: 256, StreamBuffer: 2})
	s, err := e.Submit(context.Background(), engine.Request{Tokens: textTokens(t, p, 8, 1), MaxTokens: 100, Sampler: samplerIgnoreEOG(p)})
	require.NoError(t, err)
	// Nobody reads: the request cannot end by itself.
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	err = e.Shutdown(ctx)
	require.ErrorIs(t, err, context.DeadlineExceeded)
	res := s.Wait()
	require.ErrorIs(t, res.Err, engine.ErrClosed)
	_, err = e.Submit(context.Background(), engine.Request{Tokens: textTokens(t, p, 8, 5)})
	require.ErrorIs(t, err, engine.ErrClosed)
}
