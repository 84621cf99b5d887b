package ggufcheck

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/vlm-go/vlm/gguf"
)

var (
	errNotFound = errors.New("not found")
	errInvalid  = errors.New("invalid")
)

func TestOpen(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "good.gguf")
	w := gguf.NewWriter()
	require.NoError(t, w.AddKV("general.architecture", "llama"))
	require.NoError(t, w.WriteFile(good))
	bad := filepath.Join(dir, "bad.gguf")
	require.NoError(t, os.WriteFile(bad, []byte("text"), 0o644))
	ok := func(*gguf.File) error { return nil }

	f, err := Open(good, ok, errNotFound, errInvalid)
	require.NoError(t, err)
	assert.Equal(t, "llama", f.Architecture())

	_, err = Open(filepath.Join(dir, "none.gguf"), ok, errNotFound, errInvalid)
	assert.ErrorIs(t, err, errNotFound)
	assert.ErrorIs(t, err, fs.ErrNotExist)

	_, err = Open(bad, ok, errNotFound, errInvalid)
	assert.ErrorIs(t, err, errInvalid)
	assert.ErrorIs(t, err, gguf.ErrNotGGUF)

	refuse := errors.New("refused")
	_, err = Open(good, func(*gguf.File) error { return refuse }, errNotFound, errInvalid)
	assert.ErrorIs(t, err, errInvalid)
	assert.ErrorIs(t, err, refuse)
}
