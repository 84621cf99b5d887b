package isolate_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/vlm-go/vlm/gguf"
	"github.com/vlm-go/vlm/internal/testmodel"
	"github.com/vlm-go/vlm/isolate"
)

// FuzzCheck mutates the metadata of a valid model or projector (header,
// KV values, tensor shapes: the bytes before the tensor data) and runs the
// trial — load, context, decode, encode — in a child: whatever the file
// does to llama.cpp, this process only sees an error. Run it with
//
//	./build.sh go test ./isolate -run '^$' -fuzz FuzzCheck -fuzztime 10m
func FuzzCheck(f *testing.F) {
	mp, pp := testmodel.TinyPair(f, testmodel.ProjectorIdefics3, gguf.TypeF16)
	model, err := os.ReadFile(mp)
	require.NoError(f, err)
	proj, err := os.ReadFile(pp)
	require.NoError(f, err)
	meta := func(path string) int {
		g, err := gguf.Open(path)
		require.NoError(f, err)
		return int(g.DataOffset)
	}
	metaModel, metaProj := meta(mp), meta(pp)
	f.Add(false, uint32(8), byte(0xff), uint32(0), byte(0))
	f.Add(true, uint32(300), byte('9'), uint32(17), byte(0))
	f.Add(false, uint32(1000), byte(1), uint32(2000), byte(0x80))
	f.Add(true, uint32(2500), byte(0), uint32(2600), byte(0xff))
	f.Fuzz(func(t *testing.T, inProj bool, off1 uint32, v1 byte, off2 uint32, v2 byte) {
		data, n := model, metaModel
		if inProj {
			data, n = proj, metaProj
		}
		data = append([]byte(nil), data...)
		data[int(off1)%n] = v1
		data[int(off2)%n] = v2
		dir := t.TempDir()
		m, p := mp, pp
		if inProj {
			p = filepath.Join(dir, "mmproj.gguf")
		} else {
			m = filepath.Join(dir, "model.gguf")
		}
		require.NoError(t, os.WriteFile(filepath.Join(dir, filepath.Base(map[bool]string{true: p, false: m}[inProj])), data, 0o644))
		err := isolate.Check(context.Background(), m, p, isolate.Options{Timeout: 30 * time.Second})
		switch {
		case err == nil, errors.Is(err, isolate.ErrFailed):
		case errors.Is(err, isolate.ErrCrashed), errors.Is(err, isolate.ErrTimeout):
			t.Logf("caught in the child: %v", err) // a class for the note, not a failure of this process
		default:
			t.Fatalf("unexpected: %v", err)
		}
	})
}
