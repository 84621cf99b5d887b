package mtmd_test

import (
	"context"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/vlm-go/vlm/gguf"
	"github.com/vlm-go/vlm/internal/testmodel"
	"github.com/vlm-go/vlm/mtmd"
)

func TestProjectorAndChunkAccessors(t *testing.T) {
	p := loadPair(t, testmodel.ProjectorIdefics3, gguf.TypeF16)
	assert.Same(t, p.model, p.proj.Model())
	info := p.proj.Info()
	assert.Equal(t, "idefics3", info.Type)
	assert.EqualValues(t, p.spec.Projector.ImageSize, info.ImageSize)
	assert.EqualValues(t, p.spec.Text.NEmbd, info.OutputEmbd)
	assert.False(t, p.proj.UsesMRoPE())

	img, err := mtmd.ImageFromGo(testImage(64, 64, 1))
	require.NoError(t, err)
	chunks, err := p.proj.Tokenize(context.Background(), "a "+p.proj.Marker(), []*mtmd.Image{img}, mtmd.TokenizeOptions{})
	require.NoError(t, err)
	defer chunks.Close()
	want, _ := p.spec.ImageChunks(64, 64)
	tiles := 0
	for i := 0; i < chunks.Len(); i++ {
		ch := chunks.Chunk(i)
		if ch.Type == mtmd.ChunkImage {
			assert.Equal(t, tiles, ch.Tile, "tiles of one image are numbered in order")
			tiles++
		}
	}
	assert.Equal(t, len(want), tiles)
	assert.GreaterOrEqual(t, chunks.NPos(), chunks.NTokens()-1)
}
