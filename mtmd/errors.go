package mtmd

import (
	"errors"
	"github.com/vlm-go/vlm/internal/errkind"

	"github.com/vlm-go/vlm"
	"github.com/vlm-go/vlm/gguf"
)

// Errors of this package; test for them with errors.Is.
var (
	// ErrClosed: the projector or chunks were closed.
	ErrClosed = vlm.ErrClosed
	// ErrNotFound: the projector file does not exist (also matches fs.ErrNotExist).
	ErrNotFound = errors.New("mtmd: projector file not found")
	// ErrInvalidProjector: the file is not a projector mtmd can load safely.
	ErrInvalidProjector = errors.New("mtmd: invalid projector file")
	// ErrProjectorMismatch: the projector's output width differs from the
	// text model's input embedding width, or it belongs to another model.
	ErrProjectorMismatch = gguf.ErrProjectorMismatch
	// ErrImageTooLarge: the image has more pixels (or bytes) than allowed.
	ErrImageTooLarge = errors.New("mtmd: image too large")
	// ErrBudgetBusy: an image waited for its bytes of a MemoryBudget until
	// its context's deadline (other decodes held them); retry later.
	ErrBudgetBusy = errors.New("mtmd: image memory budget busy")
	// ErrInvalidImage: the image is empty, truncated or corrupt.
	ErrInvalidImage = errkind.New("mtmd: invalid image", vlm.ErrInvalidArgument)
	// ErrUnsupportedFormat: the bytes are not an image format vlm decodes.
	ErrUnsupportedFormat = errors.New("mtmd: unsupported image format")
	// ErrMarkerMismatch: the number of media markers differs from the images.
	ErrMarkerMismatch = errors.New("mtmd: media markers do not match the images")
	// ErrUBatchTooSmall: the projector needs a whole image in one micro-batch
	// (non-causal attention) and the context's UBatchSize is smaller.
	ErrUBatchTooSmall = gguf.ErrUBatchTooSmall
	// ErrCancelled: the context.Context was cancelled.
	ErrCancelled = vlm.ErrCancelled
	// ErrInvalidArgument: an argument is out of range.
	ErrInvalidArgument = vlm.ErrInvalidArgument
	// ErrContextFull: the prompt does not fit in the context.
	ErrContextFull = vlm.ErrContextFull
	// ErrAudioUnsupported: audio input is not supported by vlm.
	ErrAudioUnsupported = errors.New("mtmd: audio input is not supported")
)
