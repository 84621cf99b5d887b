package openai

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http/httptest"
	"syscall"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/vlm-go/vlm/mtmd"
	"github.com/vlm-go/vlm/pipeline"
)

// TestImageMemoryErrorsMap: an image over the memory bounds is 413
// image_too_large; one that waited for the image memory until the
// request's deadline is 429 with Retry-After (not 408: the server, not the
// client, was slow).
func TestImageMemoryErrorsMap(t *testing.T) {
	tooLarge := fmt.Errorf("pipeline: %w", &mtmd.ImageMemoryError{Scope: "request", Images: 2,
		Largest: mtmd.ImageInfo{Format: "png", Width: 7000, Height: 7000, DecodeBytes: 199145728, KeptBytes: 3 << 20}, Bytes: 202291456, Limit: 64 << 20})
	busy := fmt.Errorf("pipeline: image 1 of 8: png image 7000×7000: waited 1s for 199145728 bytes of the image memory budget (398291456 of 536870912 in use): %w (%w)",
		pipeline.ErrImageMemoryBusy, context.DeadlineExceeded)
	pixels := fmt.Errorf("png image: 20000×20000 pixels, limit 50000000 pixels: %w", mtmd.ErrImageTooLarge)
	cases := []struct {
		err           error
		status        int
		code          string
		retryAfter    string
		wantInMessage string
	}{
		{tooLarge, 413, "image_too_large", "", "over the request limit of 67108864 bytes"},
		{pixels, 413, "image_too_large", "", "20000×20000"},
		{busy, 429, "overloaded", "1", "398291456 of 536870912 in use"},
	}
	for _, c := range cases {
		rec := httptest.NewRecorder()
		writeError(rec, mapError(c.err))
		assert.Equal(t, c.status, rec.Code, c.err.Error())
		assert.Equal(t, c.retryAfter, rec.Header().Get("Retry-After"))
		var body struct {
			Error struct{ Message, Code string } `json:"error"`
		}
		require.NoError(t, json.Unmarshal(rec.Body.Bytes(), &body))
		assert.Equal(t, c.code, body.Error.Code)
		assert.Contains(t, body.Error.Message, c.wantInMessage)
	}
}

// TestChildCrashErrorsMap: a request the pipeline's model process died
// under is 503 with Retry-After (retryable: the process is restarting);
// a crash loop is 503 model_unavailable.
func TestChildCrashErrorsMap(t *testing.T) {
	crash := &pipeline.CrashError{PID: 42, Signal: syscall.SIGSEGV, ExitCode: 2, Stage: "decode", Report: "SIGSEGV: segmentation violation"}
	loop := fmt.Errorf("pipeline: 5 deaths within 5m0s, the last: %w: %w", crash, pipeline.ErrCrashLoop)
	for _, c := range []struct {
		err  error
		code string
	}{{crash, "model_crashed"}, {loop, "model_unavailable"}} {
		rec := httptest.NewRecorder()
		writeError(rec, mapError(c.err))
		assert.Equal(t, 503, rec.Code)
		assert.Equal(t, "1", rec.Header().Get("Retry-After"))
		var body struct {
			Error struct{ Message, Code string } `json:"error"`
		}
		require.NoError(t, json.Unmarshal(rec.Body.Bytes(), &body))
		assert.Equal(t, c.code, body.Error.Code)
		assert.Contains(t, body.Error.Message, "SIGSEGV")
	}
}
