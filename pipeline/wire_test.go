package pipeline

import (
	"bytes"
	"fmt"
	"io"
	"net"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/vlm-go/vlm/llama"
	"github.com/vlm-go/vlm/sampler"
	"github.com/vlm-go/vlm/template"
)

// TestWireFrames: frames cross whole and in order; tokens, requests and
// errors keep what they carry (errors.Is on the sentinels).
func TestWireFrames(t *testing.T) {
	a, b := net.Pipe()
	wa, wb := newWire(a), newWire(b)
	defer a.Close()
	defer b.Close()
	tok := llama.GeneratedToken{ID: 1234, Text: "héllo\x00", Pos: 77, Elapsed: 3 * time.Millisecond}
	req := wireRequest{Msgs: []template.Message{template.User(template.Image(), template.Text("hi"))},
		Images: []wireImage{{W: 2, H: 1, RGB: []byte{1, 2, 3, 4, 5, 6}}}, MaxTokens: 9, Sampler: sampler.Config{Temperature: 0.5, Grammar: "root ::= \"a\""}, Stop: []string{"x"}}
	errIn := fmt.Errorf("pipeline: too long: %w", llama.ErrPromptTooLong)
	go func() {
		_ = wa.send(fToken, 5, appendToken(nil, tok))
		_ = wa.sendGob(fRequest, 6, req)
		_ = wa.sendGob(fEnd, 7, wireEnd{Err: toWire(errIn), Stop: llama.StopError})
	}()
	ty, id, p, err := wb.recv()
	require.NoError(t, err)
	assert.Equal(t, fToken, ty)
	assert.EqualValues(t, 5, id)
	got, err := parseToken(p)
	require.NoError(t, err)
	assert.Equal(t, tok, got)

	ty, id, p, err = wb.recv()
	require.NoError(t, err)
	assert.Equal(t, fRequest, ty)
	assert.EqualValues(t, 6, id)
	var r wireRequest
	require.NoError(t, decodeGob(p, &r))
	assert.Equal(t, req, r)

	_, _, p, err = wb.recv()
	require.NoError(t, err)
	var end wireEnd
	require.NoError(t, decodeGob(p, &end))
	e := end.Err.err()
	assert.ErrorIs(t, e, llama.ErrPromptTooLong)
	assert.NotErrorIs(t, e, ErrOverloaded)
	assert.Equal(t, errIn.Error(), e.Error())

	_, err = parseToken([]byte{1, 2})
	assert.Error(t, err)
	a.Close()
	_, _, _, err = wb.recv()
	assert.ErrorIs(t, err, io.EOF)
}

// BenchmarkWireToken compares a token frame's payload in the binary form
// the wire uses with gob (one encoder per frame, as the wire's other
// frames): encode and decode.
func BenchmarkWireToken(b *testing.B) {
	tok := llama.GeneratedToken{ID: 1234, Text: " word", Pos: 77, Elapsed: 3 * time.Millisecond}
	b.Run("binary", func(b *testing.B) {
		var buf []byte
		for b.Loop() {
			buf = appendToken(buf[:0], tok)
			if _, err := parseToken(buf); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("gob", func(b *testing.B) {
		var buf bytes.Buffer
		for b.Loop() {
			buf.Reset()
			if err := gobEncode(&buf, tok); err != nil {
				b.Fatal(err)
			}
			var got llama.GeneratedToken
			if err := decodeGob(buf.Bytes(), &got); err != nil {
				b.Fatal(err)
			}
		}
	})
}
