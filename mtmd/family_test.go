package mtmd_test

import (
	"context"
	"log/slog"
	"strings"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/vlm-go/vlm"
	"github.com/vlm-go/vlm/gguf"
	"github.com/vlm-go/vlm/internal/testmodel"
	"github.com/vlm-go/vlm/llama"
	"github.com/vlm-go/vlm/mtmd"
)

type warnings struct {
	mu  sync.Mutex
	got []string
}

func (w *warnings) Enabled(context.Context, slog.Level) bool { return true }
func (w *warnings) Handle(_ context.Context, r slog.Record) error {
	if r.Level >= slog.LevelWarn {
		w.mu.Lock()
		w.got = append(w.got, r.Message)
		w.mu.Unlock()
	}
	return nil
}
func (w *warnings) WithAttrs([]slog.Attr) slog.Handler { return w }
func (w *warnings) WithGroup(string) slog.Handler      { return w }

func (w *warnings) text() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return strings.Join(w.got, "\n")
}

// A projector whose family frames images with tokens the model lacks (a
// Gemma 3 projector on a LLaVA-style model of the same width) loads, with a
// warning; the matching pair loads without one.
func TestProjectorOfAnotherFamilyWarns(t *testing.T) {
	w := &warnings{}
	vlm.SetLogger(slog.New(w))
	defer vlm.SetLogger(nil)
	ctx := context.Background()
	llavaModel, _ := testmodel.TinyPair(t, testmodel.ProjectorMLP, gguf.TypeF16)
	gemmaModel, gemmaProj := testmodel.TinyPair(t, testmodel.ProjectorGemma3, gguf.TypeF16)

	m, err := llama.Load(ctx, gemmaModel, llama.LoadOptions{})
	require.NoError(t, err)
	defer m.Close()
	p, err := mtmd.Load(ctx, gemmaProj, m, mtmd.Options{Threads: 1})
	require.NoError(t, err)
	p.Close()
	assert.NotContains(t, w.text(), "another model", "the matching pair")

	other, err := llama.Load(ctx, llavaModel, llama.LoadOptions{})
	require.NoError(t, err)
	defer other.Close()
	p, err = mtmd.Load(ctx, gemmaProj, other, mtmd.Options{Threads: 1})
	require.NoError(t, err, "the tiny families share one width")
	p.Close()
	assert.Contains(t, w.text(), "it may belong to another model")
}
