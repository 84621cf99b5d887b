package gguf

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"testing"
)

// FuzzRead feeds arbitrary bytes to Read (seed corpus in
// testdata/fuzz/FuzzRead: valid small files, a model, a projector and
// truncated copies). Read must not panic, must allocate in proportion to the
// input at most, and a file it accepts must be safe to validate and keep its
// invariants.
func FuzzRead(f *testing.F) {
	f.Add([]byte("GGUF"))
	f.Fuzz(func(t *testing.T, data []byte) {
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		file, err := Read(bytes.NewReader(data), int64(len(data)))
		runtime.ReadMemStats(&after)
		// bufio's 64 KiB buffer plus a bounded factor of the input
		if got, limit := after.TotalAlloc-before.TotalAlloc, uint64(32*len(data)+1<<20); got > limit {
			t.Fatalf("Read of %d bytes allocated %d bytes (limit %d)", len(data), got, limit)
		}
		if err != nil {
			var fe *FormatError
			if !errors.As(err, &fe) {
				t.Fatalf("error is not a *FormatError: %v", err)
			}
			if file != nil {
				t.Fatal("file and error")
			}
			return
		}
		if file.DataOffset%int64(file.Alignment) != 0 {
			t.Fatalf("data offset %d not aligned to %d", file.DataOffset, file.Alignment)
		}
		for _, ti := range file.Tensors {
			end := file.DataOffset + int64(ti.Offset) + int64(ti.Size)
			if ti.Offset%uint64(file.Alignment) != 0 || end > int64(len(data)) || len(ti.Shape) > MaxDims {
				t.Fatalf("tensor %q breaks the invariants: %+v", ti.Name, ti)
			}
			if _, ok := file.Tensor(ti.Name); !ok {
				t.Fatalf("tensor %q not found by name", ti.Name)
			}
		}
		for _, kv := range file.KVs {
			if _, ok := file.Get(kv.Key); !ok {
				t.Fatalf("key %q not found", kv.Key)
			}
			_ = kv.Len()
			_ = kv.TypeName()
		}
		_ = file.ParamCount()
		_ = file.TensorDataSize()
		for _, err := range []error{ValidateLayout(file), ValidateModel(file), ValidateProjector(file)} {
			if err != nil && !errors.Is(err, ErrInvalid) {
				t.Fatalf("validation error outside ErrInvalid: %v", err)
			}
		}
		if p, err := ProjectorInfo(file); err == nil {
			_ = p.CheckUBatch(1)
			_ = p.CheckModel(file)
		}
	})
}

// readSeed decodes one file of the seed corpus.
func readSeed(t *testing.T, name string) []byte {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join("testdata/fuzz/FuzzRead", name))
	if err != nil {
		t.Fatal(err)
	}
	s := strings.TrimSpace(strings.TrimPrefix(string(raw), "go test fuzz v1\n"))
	s = strings.TrimSuffix(strings.TrimPrefix(s, "[]byte("), ")")
	b, err := strconv.Unquote(s)
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	return []byte(b)
}

// TestSeedCorpus checks that the seed corpus still holds what it claims:
// the valid seeds read and validate, the cut ones fail.
func TestSeedCorpus(t *testing.T) {
	for _, name := range []string{"small", "align64-q8", "all-values", "model", "projector-mlp", "projector-gemma3", "projector-idefics3"} {
		b := readSeed(t, name)
		f, err := Read(bytes.NewReader(b), int64(len(b)))
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		switch {
		case name == "model":
			if err := ValidateModel(f); err != nil {
				t.Errorf("%s: %v", name, err)
			}
		case strings.HasPrefix(name, "projector-"):
			if err := ValidateProjector(f); err != nil {
				t.Errorf("%s: %v", name, err)
			}
		}
	}
	for _, name := range []string{"small-cut-header", "small-cut-kv", "small-cut-tensorinfo", "small-cut-data", "model-meta-only", "bad-alignment", "huge-counts"} {
		b := readSeed(t, name)
		if _, err := Read(bytes.NewReader(b), int64(len(b))); err == nil {
			t.Errorf("%s: read without error", name)
		}
	}
}
