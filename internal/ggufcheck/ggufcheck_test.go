package ggufcheck

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

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

func TestOpenNotARegularFile(t *testing.T) {
	dir := t.TempDir()
	ok := func(*gguf.File) error { return nil }
	fifo := filepath.Join(dir, "model.gguf")
	require.NoError(t, syscall.Mkfifo(fifo, 0o644))
	done := make(chan error, 1)
	go func() { _, err := Open(fifo, ok, errNotFound, errInvalid); done <- err }()
	select {
	case err := <-done:
		assert.ErrorIs(t, err, errInvalid)
		assert.ErrorContains(t, err, "not a regular file (a named pipe)")
	case <-time.After(10 * time.Second):
		t.Fatal("Open blocked on a named pipe")
	}

	_, err := Open(dir, ok, errNotFound, errInvalid)
	assert.ErrorIs(t, err, errInvalid)
	assert.ErrorContains(t, err, "a directory")

	loop := filepath.Join(dir, "loop.gguf")
	require.NoError(t, os.Symlink(loop, loop))
	_, err = Open(loop, ok, errNotFound, errInvalid)
	assert.ErrorIs(t, err, errInvalid, "a symlink loop matches the invalid class")
	assert.NotErrorIs(t, err, errNotFound)
}

func TestOpenSaysWhatTheFileIs(t *testing.T) {
	dir := t.TempDir()
	ok := func(*gguf.File) error { return nil }
	for _, c := range []struct {
		name, content, want string
	}{
		{"lfs.gguf", "version https://git-lfs.github.com/spec/v1\noid sha256:4d7a\nsize 138000000\n", "a Git LFS pointer"},
		{"page.gguf", "\n<!DOCTYPE html>\n<html><body>Sign in</body></html>", "an HTML page"},
		{"page2.gguf", "<HTML><HEAD></HEAD></HTML>", "an HTML page"},
		{"err.gguf", `{"error":"not found"}`, "a JSON or XML document"},
		{"empty.gguf", "", "empty"},
		{"zip.gguf", "PK\x03\x04rest", "a zip archive"},
	} {
		path := filepath.Join(dir, c.name)
		require.NoError(t, os.WriteFile(path, []byte(c.content), 0o644))
		_, err := Open(path, ok, errNotFound, errInvalid)
		assert.ErrorIs(t, err, errInvalid, c.name)
		assert.ErrorContains(t, err, c.want, c.name)
	}
}

func TestOpenRefusesSplitModels(t *testing.T) {
	dir := t.TempDir()
	ok := func(*gguf.File) error { return nil }
	write := func(name string, kvs ...any) string {
		w := gguf.NewWriter()
		require.NoError(t, w.AddKV("general.architecture", "llama"))
		for i := 0; i < len(kvs); i += 2 {
			require.NoError(t, w.AddKV(kvs[i].(string), kvs[i+1]))
		}
		path := filepath.Join(dir, name)
		require.NoError(t, w.WriteFile(path))
		return path
	}
	_, err := Open(write("m-00001-of-00003.gguf", "split.no", uint16(0), "split.count", uint16(3)), ok, errNotFound, errInvalid)
	assert.ErrorIs(t, err, errInvalid)
	assert.ErrorContains(t, err, "split into 3 files")
	assert.ErrorContains(t, err, "llama-gguf-split --merge")
	_, err = Open(write("one.gguf", "split.count", uint16(1)), ok, errNotFound, errInvalid)
	assert.NoError(t, err, "a split of one file is a whole model")
}
