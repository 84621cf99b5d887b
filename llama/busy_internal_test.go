package llama

import (
	"context"
	"errors"
	"testing"

	"github.com/vlm-go/vlm/gguf"
	"github.com/vlm-go/vlm/internal/testmodel"
)

// TestBusyContextRefusesASecondCall: while one call holds a context, every
// other call on it returns ErrConcurrentUse at once (deterministically: the
// context is held by hand, as a running Decode holds it).
func TestBusyContextRefusesASecondCall(t *testing.T) {
	mp, _ := testmodel.TinyPair(t, testmodel.ProjectorMLP, gguf.TypeF16)
	m, err := Load(context.Background(), mp, LoadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	x, err := m.NewContext(ContextOptions{ContextSize: 64, Threads: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer x.Close()
	b, err := x.NewBatch(1)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	if err := b.Add(1, 0, true); err != nil {
		t.Fatal(err)
	}
	if _, err := x.enter(); err != nil { // what Decode does first
		t.Fatal(err)
	}
	calls := map[string]error{
		"Decode":      x.Decode(context.Background(), b),
		"ClearMemory": x.ClearMemory(),
		"SetThreads":  x.SetThreads(1, 1),
	}
	_, calls["Logits"] = x.Logits(-1)
	for name, err := range calls {
		if !errors.Is(err, ErrConcurrentUse) {
			t.Errorf("%s on a busy context: %v, want ErrConcurrentUse", name, err)
		}
	}
	x.leave()
	if err := x.Decode(context.Background(), b); err != nil {
		t.Fatalf("after the first call left: %v", err)
	}
}
