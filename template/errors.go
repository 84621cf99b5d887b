package template

import (
	"errors"
	"fmt"
	"github.com/vlm-go/vlm/internal/errkind"
)

// ErrNoTemplate is returned when no chat template is available: the model
// has none, and the caller named neither a Jinja source nor a built-in
// template.
var ErrNoTemplate = errors.New("template: no chat template (the model has none and no template was named)")

// ErrUnknownTemplate is returned by [Builtin] and [Load] for a name that is
// not one of the built-in templates listed by [BuiltinNames].
var ErrUnknownTemplate = errors.New("template: unknown built-in template")

// ErrInvalidMessage is returned when a [Message] cannot be turned into
// template input, e.g. one that sets both Content and Text.
var ErrInvalidMessage = errkind.New("template: invalid message", errkind.ErrInvalidArgument)

// ErrImageCount is returned by [Template.Prompt] when the number of media
// markers in the prompt differs from the number of image parts in the
// messages, so mtmd could not pair markers with images.
var ErrImageCount = errors.New("template: media marker count does not match image count")

// CompileError reports a template source that the Jinja engine could not
// compile. Err is the engine's error.
type CompileError struct {
	Err error // the engine's error
}

// Error returns the engine's message prefixed with the package name.
func (e *CompileError) Error() string { return "template: compile: " + e.Err.Error() }

// Unwrap returns the engine's error.
func (e *CompileError) Unwrap() error { return e.Err }

// RenderError reports a failure while rendering that did not come from the
// template's own raise_exception (an unknown filter, calling a
// non-callable, a failing built-in, ...). Err is the engine's error.
type RenderError struct {
	Err error // the engine's error
}

// Error returns the engine's message prefixed with the package name.
func (e *RenderError) Error() string { return "template: render: " + e.Err.Error() }

// Unwrap returns the engine's error.
func (e *RenderError) Unwrap() error { return e.Err }

// RaiseError is the error a template raises with raise_exception(message),
// as transformers does with jinja2's TemplateError. Its Error method returns
// the template's message exactly, with nothing added, so it compares equal
// to str(error) in Python.
type RaiseError struct {
	Message string // str() of the argument of raise_exception
}

// Error returns the message the template passed to raise_exception.
func (e *RaiseError) Error() string { return e.Message }

// ImageCountError is the detailed form of [ErrImageCount]: it records how
// many images the messages hold and how many markers the prompt has.
// errors.Is(err, ErrImageCount) reports true for it.
type ImageCountError struct {
	Images  int    // image parts in the messages
	Markers int    // media markers found
	Style   string // name of the image style used to find placeholders
	Detail  string // why they differ, when known
}

// Error describes the mismatch.
func (e *ImageCountError) Error() string {
	msg := fmt.Sprintf("template: %d image part(s) but %d media marker(s) in the prompt (image style %q)", e.Images, e.Markers, e.Style)
	if e.Detail != "" {
		msg += ": " + e.Detail
	}
	return msg
}

// Is reports whether target is [ErrImageCount].
func (e *ImageCountError) Is(target error) bool { return target == ErrImageCount }
