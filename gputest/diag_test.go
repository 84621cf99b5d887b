package gputest_test

import (
	"context"
	"fmt"
	"os"
	"runtime"
	"slices"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/vlm-go/vlm"
	"github.com/vlm-go/vlm/gguf"
	"github.com/vlm-go/vlm/internal/testmodel"
	"github.com/vlm-go/vlm/llama"
	"github.com/vlm-go/vlm/mtmd"
)

// TestGPUTeardownDiag is a diagnosis of teardown crashes, run by
// scripts/gpu-check.sh (VLM_GPU_DIAG=1) once per variant in a process of its
// own: it loads the tiny pair on the GPU, evaluates a prompt with an image,
// generates a few tokens and frees everything, saying on stderr what it frees
// before each call. Variants (environment): VLM_DIAG_PROJ=none (text only),
// VLM_DIAG_LOCK=1 (one OS thread for all of it), VLM_DIAG_THREADS=n (CPU
// threads), VLM_DIAG_MAPS=file (writes /proc/self/maps there before freeing).
func TestGPUTeardownDiag(t *testing.T) {
	if os.Getenv("VLM_GPU_DIAG") != "1" {
		t.Skip("set VLM_GPU_DIAG=1 (scripts/gpu-check.sh does)")
	}
	if !slices.Contains(vlm.BackendNames(), "CUDA") {
		t.Skip(skipNoGPU)
	}
	if os.Getenv("VLM_DIAG_LOCK") == "1" {
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
	}
	threads := runtime.NumCPU()
	if v := os.Getenv("VLM_DIAG_THREADS"); v != "" {
		_, err := fmt.Sscan(v, &threads)
		require.NoError(t, err)
	}
	say := func(s string) { fmt.Fprintln(os.Stderr, "diag:", s) }
	modelPath, projPath := testmodel.TinyPair(t, testmodel.ProjectorIdefics3, gguf.TypeF16)
	ctx := context.Background()
	say("loading the model")
	m, err := llama.Load(ctx, modelPath, llama.LoadOptions{GPULayers: -1})
	require.NoError(t, err)
	x, err := m.NewContext(llama.ContextOptions{ContextSize: 256, BatchSize: 128, Threads: threads})
	require.NoError(t, err)
	var p *mtmd.Projector
	pos := int32(0)
	if os.Getenv("VLM_DIAG_PROJ") != "none" {
		say("loading the projector")
		p, err = mtmd.Load(ctx, projPath, m, mtmd.Options{Threads: threads})
		require.NoError(t, err)
		img, err := mtmd.ImageFromGo(testImage(64, 64))
		require.NoError(t, err)
		chunks, err := p.Tokenize(ctx, "Describe "+p.Marker()+" please.", []*mtmd.Image{img}, mtmd.TokenizeOptions{AddSpecial: true, ParseSpecial: true})
		require.NoError(t, err)
		say("evaluating text and image")
		pos, _, err = p.Eval(ctx, x, chunks, mtmd.EvalOptions{Logits: true})
		require.NoError(t, err)
		require.NoError(t, chunks.Close())
	} else {
		b, err := x.NewBatch(8)
		require.NoError(t, err)
		require.NoError(t, b.AddSequence([]llama.Token{1, 300, 301, 302}, 0, 0, true))
		say("evaluating text")
		require.NoError(t, x.Decode(ctx, b))
		require.NoError(t, b.Close())
		pos = 4
	}
	b, err := x.NewBatch(1)
	require.NoError(t, err)
	say("generating")
	for i := 0; i < 4; i++ {
		logits, err := x.Logits(-1)
		require.NoError(t, err)
		b.Clear()
		require.NoError(t, b.Add(llama.Token(argmax(logits)), pos, true))
		pos++
		require.NoError(t, x.Decode(ctx, b))
	}
	require.NoError(t, b.Close())
	if f := os.Getenv("VLM_DIAG_MAPS"); f != "" {
		maps, err := os.ReadFile("/proc/self/maps")
		require.NoError(t, err)
		require.NoError(t, os.WriteFile(f, maps, 0o644))
	}
	say("freeing the context (llama_free)")
	require.NoError(t, x.Close())
	if p != nil {
		say("freeing the projector (mtmd_free)")
		require.NoError(t, p.Close())
	}
	say("freeing the model (llama_model_free)")
	require.NoError(t, m.Close())
	say("freed everything")
}
