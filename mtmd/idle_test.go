package mtmd_test

import (
	"context"
	"runtime"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/vlm-go/vlm/gguf"
	"github.com/vlm-go/vlm/internal/testmodel"
	"github.com/vlm-go/vlm/llama"
	"github.com/vlm-go/vlm/mtmd"
)

// TestIdlePriorityEncodesTheSame: an encode on a thread of its own at the
// lowest CPU priority gives the embeddings of one on the caller's thread.
func TestIdlePriorityEncodesTheSame(t *testing.T) {
	if runtime.GOOS == "linux" {
		require.True(t, mtmd.IdlePriorityWorks(), "Linux lets a thread lower itself to SCHED_IDLE")
	} else if !mtmd.IdlePriorityWorks() {
		t.Skip("no idle CPU priority on " + runtime.GOOS)
	}
	mpath, ppath := testmodel.TinyPair(t, testmodel.ProjectorIdefics3, gguf.TypeF16)
	ctx := context.Background()
	m, err := llama.Load(ctx, mpath, llama.LoadOptions{})
	require.NoError(t, err)
	defer m.Close()
	img, err := mtmd.ImageFromGo(testImage(64, 48, 3))
	require.NoError(t, err)
	var got [2][]float32
	for k, idle := range []bool{false, true} {
		p, err := mtmd.Load(ctx, ppath, m, mtmd.Options{Threads: 2, IdlePriority: idle, NoGPU: true})
		require.NoError(t, err)
		require.Equal(t, idle, p.IdlePriority())
		chunks, err := p.Tokenize(ctx, "Look: "+p.Marker(), []*mtmd.Image{img}, mtmd.TokenizeOptions{ParseSpecial: true})
		require.NoError(t, err)
		for i, ch := range chunks.All() {
			if ch.Type == mtmd.ChunkImage {
				got[k], err = p.Encode(ctx, chunks, i)
				require.NoError(t, err)
				break
			}
		}
		require.NoError(t, chunks.Close())
		require.NoError(t, p.Close())
		require.NotEmpty(t, got[k])
	}
	require.Equal(t, got[0], got[1])
}
