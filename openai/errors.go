package openai

import (
	"encoding/json"
	"errors"
	"net/http"

	"github.com/vlm-go/vlm/llama"
	"github.com/vlm-go/vlm/mtmd"
	"github.com/vlm-go/vlm/pipeline"
	"github.com/vlm-go/vlm/sampler"
	"github.com/vlm-go/vlm/template"
)

// apiError is an error in OpenAI's shape:
// {"error": {"message", "type", "param", "code"}}.
type apiError struct {
	status  int
	Message string `json:"message"`
	Type    string `json:"type"`
	Param   any    `json:"param"`
	Code    any    `json:"code"`
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func writeError(w http.ResponseWriter, e *apiError) {
	if e.Param == "" {
		e.Param = nil
	}
	if e.Code == "" {
		e.Code = nil
	}
	if e.status == http.StatusTooManyRequests || e.status == http.StatusServiceUnavailable {
		w.Header().Set("Retry-After", "1")
	}
	writeJSON(w, e.status, map[string]any{"error": e})
}

// mapError turns an error of the pipeline into its status and shape.
func mapError(err error) *apiError {
	e := &apiError{status: 500, Type: "server_error", Message: err.Error()}
	switch {
	case errors.Is(err, pipeline.ErrCrashLoop):
		// The model's process keeps dying: this replica cannot answer.
		e.status, e.Code = 503, "model_unavailable"
	case errors.Is(err, pipeline.ErrChildCrashed):
		// The model's process died with the request in it; it is being
		// restarted, and the request can be retried (Retry-After).
		e.status, e.Code = 503, "model_crashed"
		e.Message = "the model's process crashed and is being restarted (" + err.Error() + "); retry shortly"
	case errors.Is(err, pipeline.ErrOverloaded):
		e.status, e.Type, e.Code = 429, "rate_limit_error", "overloaded"
		e.Message = "the server is busy (" + err.Error() + "); retry shortly"
	case errors.Is(err, pipeline.ErrImageMemoryBusy):
		e.status, e.Type, e.Code = 429, "rate_limit_error", "overloaded"
		e.Message = "the server is busy decoding other images (" + err.Error() + "); retry shortly"
	case errors.Is(err, pipeline.ErrClosed):
		e.status, e.Code = 503, "shutting_down"
	case errors.Is(err, llama.ErrPromptTooLong):
		e.status, e.Type, e.Code, e.Param = 400, "invalid_request_error", "context_length_exceeded", "messages"
	case errors.Is(err, pipeline.ErrImageTooLarge):
		e.status, e.Type, e.Code, e.Param = 413, "invalid_request_error", "image_too_large", "messages"
	case errors.Is(err, mtmd.ErrInvalidImage), errors.Is(err, mtmd.ErrUnsupportedFormat), errors.Is(err, mtmd.ErrAudioUnsupported):
		e.status, e.Type, e.Code, e.Param = 400, "invalid_request_error", "invalid_image", "messages"
	case errors.Is(err, pipeline.ErrInvalidInput), errors.Is(err, pipeline.ErrInvalidOptions),
		errors.Is(err, sampler.ErrInvalidConfig), errors.Is(err, template.ErrInvalidMessage), errors.Is(err, template.ErrImageCount), errors.Is(err, mtmd.ErrMarkerMismatch):
		e.status, e.Type = 400, "invalid_request_error"
	case errors.As(err, new(*template.RaiseError)):
		// The model's chat template refused the conversation (e.g. a
		// family that takes one tool call per turn).
		e.status, e.Type, e.Param = 400, "invalid_request_error", "messages"
	case errors.Is(err, llama.ErrCancelled):
		e.status, e.Type, e.Code = 408, "timeout", "request_timeout"
	}
	return e
}
