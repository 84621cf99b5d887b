package mtmd_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/vlm-go/vlm/gguf"
	"github.com/vlm-go/vlm/internal/testmodel"
	"github.com/vlm-go/vlm/mtmd"
)

// TestTokenizeDoesNotWaitForAnEncode: while an image encode holds the
// projector (seconds per tile on a CPU), a text prompt, and a prompt whose
// picture is in the image cache, are tokenized at once: they need no
// native call of the projector. A new picture waits (mtmd preprocesses it).
func TestTokenizeDoesNotWaitForAnEncode(t *testing.T) {
	p := loadPair(t, testmodel.ProjectorIdefics3, gguf.TypeF16)
	img, err := mtmd.ImageFromGo(testImage(64, 48, 3))
	require.NoError(t, err)
	cache := mtmd.NewImageCache(0)
	warm, err := p.proj.Tokenize(context.Background(), "look "+p.proj.Marker(), []*mtmd.Image{img}, mtmd.TokenizeOptions{Cache: cache})
	require.NoError(t, err)
	for i, ch := range warm.All() {
		if ch.Type != mtmd.ChunkText {
			_, err := p.proj.Encode(context.Background(), warm, i)
			require.NoError(t, err)
		}
	}
	warm.Close()
	require.True(t, cache.Contains(p.proj, img))

	release := p.proj.HoldNative()
	released := false
	defer func() {
		if !released {
			release()
		}
	}()
	tokenize := func(text string, images []*mtmd.Image) <-chan error {
		done := make(chan error, 1)
		go func() {
			ch, err := p.proj.Tokenize(context.Background(), text, images, mtmd.TokenizeOptions{Cache: cache, ParseSpecial: true})
			if err == nil {
				ch.Close()
			}
			done <- err
		}()
		return done
	}
	for name, done := range map[string]<-chan error{
		"text":           tokenize("What is the capital of France?", nil),
		"cached picture": tokenize("again "+p.proj.Marker(), []*mtmd.Image{img}),
	} {
		select {
		case err := <-done:
			require.NoError(t, err, name)
		case <-time.After(10 * time.Second):
			t.Fatalf("%s: Tokenize waited for the encode", name)
		}
	}
	fresh, err := mtmd.ImageFromGo(testImage(40, 40, 9))
	require.NoError(t, err)
	newPic := tokenize("new "+p.proj.Marker(), []*mtmd.Image{fresh})
	select {
	case <-newPic:
		t.Fatal("a new picture was prepared while the projector was busy")
	case <-time.After(200 * time.Millisecond):
	}
	release()
	released = true
	require.NoError(t, <-newPic)

	// After Close, Tokenize says so without waiting either.
	require.NoError(t, p.proj.Close())
	_, err = p.proj.Tokenize(context.Background(), "x", nil, mtmd.TokenizeOptions{})
	require.ErrorIs(t, err, mtmd.ErrClosed)
}

// TestWaitsForTheProjectorEndWithTheirContext: a new picture's Tokenize and
// an Encode that wait behind another encode (here: the projector held)
// return ErrCancelled when their ctx ends, not when the encode does; the
// projector works afterwards.
func TestWaitsForTheProjectorEndWithTheirContext(t *testing.T) {
	p := loadPair(t, testmodel.ProjectorIdefics3, gguf.TypeF16)
	img, err := mtmd.ImageFromGo(testImage(64, 48, 3))
	require.NoError(t, err)
	text := "look " + p.proj.Marker()
	chunks, err := p.proj.Tokenize(context.Background(), text, []*mtmd.Image{img}, mtmd.TokenizeOptions{})
	require.NoError(t, err)
	defer chunks.Close()
	image := -1
	for i, ch := range chunks.All() {
		if ch.Type == mtmd.ChunkImage {
			image = i
			break
		}
	}
	require.GreaterOrEqual(t, image, 0)

	release := p.proj.HoldNative()
	ctx, cancel := context.WithCancel(context.Background())
	tok, enc := make(chan error, 1), make(chan error, 1)
	go func() {
		fresh, err := mtmd.ImageFromGo(testImage(40, 40, 9))
		if err == nil {
			_, err = p.proj.Tokenize(ctx, text, []*mtmd.Image{fresh}, mtmd.TokenizeOptions{})
		}
		tok <- err
	}()
	go func() {
		_, err := p.proj.Encode(ctx, chunks, image)
		enc <- err
	}()
	time.Sleep(100 * time.Millisecond) // most likely both wait for the projector by now
	cancel()
	errTok, errEnc := <-tok, <-enc // before release: they did not wait for it
	release()
	require.ErrorIs(t, errTok, mtmd.ErrCancelled)
	require.ErrorIs(t, errTok, context.Canceled)
	require.ErrorIs(t, errEnc, mtmd.ErrCancelled)
	embd, err := p.proj.Encode(context.Background(), chunks, image)
	require.NoError(t, err)
	require.NotEmpty(t, embd)
}
