package pipeline_test

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/vlm-go/vlm/gguf"
	"github.com/vlm-go/vlm/internal/testmodel"
	"github.com/vlm-go/vlm/mtmd"
	"github.com/vlm-go/vlm/pipeline"
	"github.com/vlm-go/vlm/template"
)

// withoutChatTemplate copies the GGUF at src without its chat template.
func withoutChatTemplate(t *testing.T, src string) string {
	t.Helper()
	f, err := gguf.Open(src)
	require.NoError(t, err)
	r, err := os.Open(src)
	require.NoError(t, err)
	defer r.Close()
	w := gguf.NewWriter()
	for _, kv := range f.KVs {
		if kv.Key == "tokenizer.chat_template" || kv.Key == gguf.KeyAlignment {
			continue
		}
		require.NoError(t, w.AddKV(kv.Key, kv.Value), kv.Key)
	}
	for _, ti := range f.Tensors {
		data, err := f.ReadTensor(r, ti.Name)
		require.NoError(t, err)
		require.NoError(t, w.AddTensor(ti.Name, ti.Type, ti.Shape, data))
	}
	dst := filepath.Join(t.TempDir(), "no-template.gguf")
	require.NoError(t, w.WriteFile(dst))
	return dst
}

func TestModelWithoutChatTemplate(t *testing.T) {
	mp, pp := testmodel.TinyPair(t, testmodel.ProjectorMLP, gguf.TypeF16)
	bare := withoutChatTemplate(t, mp)
	ctx := context.Background()

	_, err := pipeline.New(ctx, bare, pp, pipeline.Options{Threads: 2})
	assert.ErrorIs(t, err, template.ErrNoTemplate)
	assert.ErrorContains(t, err, "ChatTemplate")

	// A template of package template by name.
	p, err := pipeline.New(ctx, bare, pp, pipeline.Options{Threads: 2, ChatTemplate: "llava-1.5", SequenceLength: 512})
	require.NoError(t, err)
	r, err := p.Run(ctx, pipeline.Input{Text: "hi", Images: []pipeline.Image{pipeline.ImageOf(picture(8, 8, 1))}}, pipeline.GenerateOptions{MaxTokens: 2})
	require.NoError(t, err)
	assert.Contains(t, r.Prompt, "USER:")
	p.Close()

	// A format only llama.cpp knows: its built-in templates, images as markers.
	p, err = pipeline.New(ctx, bare, pp, pipeline.Options{Threads: 2, ChatTemplate: "vicuna", SequenceLength: 512})
	require.NoError(t, err)
	defer p.Close()
	img, err := mtmd.ImageFromGo(picture(8, 8, 2))
	require.NoError(t, err)
	r, err = p.Run(ctx, pipeline.Input{Text: "what?", Images: []pipeline.Image{pipeline.ImageDecoded(img)}}, pipeline.GenerateOptions{MaxTokens: 2})
	require.NoError(t, err)
	assert.Contains(t, r.Prompt, "USER: "+p.Projector().Marker()+"what?")
	assert.Equal(t, 1, r.Stats.ImagesEncoded)
	assert.Contains(t, r.Stats.String(), "image chunks 1 encoded 0 cached, 2 generated")
	assert.Positive(t, r.Stats.DecodeTokensPerSecond())

	_, err = pipeline.New(ctx, bare, pp, pipeline.Options{Threads: 2, ChatTemplate: "{% if %}"})
	assert.Error(t, err)
}
