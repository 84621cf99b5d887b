package gguf

import (
	"errors"
	"fmt"
)

// Sentinel errors of the reader. Every error Read and Open return for a bad
// file is a *FormatError that wraps one of them.
var (
	// ErrNotGGUF: the file does not start with the magic "GGUF".
	ErrNotGGUF = errors.New("gguf: not a GGUF file")
	// ErrUnsupportedVersion: a version other than 2 or 3 (1 is obsolete,
	// a huge one means the other byte order).
	ErrUnsupportedVersion = errors.New("gguf: unsupported GGUF version")
	// ErrTruncated: the file ends before what its header and counts
	// describe (this includes counts too large for the bytes that remain).
	ErrTruncated = errors.New("gguf: truncated file")
	// ErrCorrupt: a value the format does not allow (bad type, negative
	// count, duplicate key, misaligned or overlapping tensor data, ...).
	ErrCorrupt = errors.New("gguf: corrupt file")
	// ErrLimit: a count or length is above a ReadOptions limit.
	ErrLimit = errors.New("gguf: limit exceeded")
)

// FormatError describes why a file could not be read. errors.Is(err, X)
// holds for its sentinel Err (ErrNotGGUF, ErrUnsupportedVersion,
// ErrTruncated, ErrCorrupt or ErrLimit) and, where the problem is a
// validation class too, for that class (e.g. ErrBadAlignment,
// ErrDuplicateTensor) and for ErrWouldAbort when the pinned llama.cpp would
// abort the process on it.
type FormatError struct {
	Offset int64  // byte offset in the file where the problem was found
	Key    string // metadata key or tensor name involved, if any
	Msg    string // what is wrong
	Err    error  // the sentinel
	kinds  []error
}

// Error describes the problem with its offset and key.
func (e *FormatError) Error() string {
	where := fmt.Sprintf("at offset %d", e.Offset)
	if e.Key != "" {
		where += fmt.Sprintf(" (%q)", e.Key)
	}
	return fmt.Sprintf("%v %s: %s", e.Err, where, e.Msg)
}

// Unwrap returns the sentinel and any validation classes.
func (e *FormatError) Unwrap() []error {
	return append([]error{e.Err}, e.kinds...)
}
