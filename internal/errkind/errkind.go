// Package errkind holds the kinds of error that every vlm package's own
// sentinels belong to, so that one errors.Is check works across layers:
// errors.Is(err, vlm.ErrInvalidArgument) is true for engine's
// ErrInvalidRequest, pipeline's ErrInvalidInput, sampler's
// ErrInvalidConfig, template's ErrInvalidMessage and the rest. It is pure Go
// so that the packages without cgo (template, gguf) can use it; the module
// root re-exports the kinds.
package errkind

import "errors"

// ErrInvalidArgument is the kind of every "the caller passed something wrong"
// error: an option out of range, an empty or inconsistent request, a bad
// image, a schema that cannot be honoured. Servers answer it with 400.
var ErrInvalidArgument = errors.New("vlm: invalid argument")

// New returns a sentinel error whose message is msg and which is also each
// of kinds for errors.Is (not for errors.Unwrap: its message stays msg).
func New(msg string, kinds ...error) error {
	return &sentinel{msg: msg, kinds: kinds}
}

type sentinel struct {
	msg   string
	kinds []error
}

func (e *sentinel) Error() string { return e.msg }

// Is reports whether target is one of e's kinds.
func (e *sentinel) Is(target error) bool {
	for _, k := range e.kinds {
		if target == k {
			return true
		}
	}
	return false
}
