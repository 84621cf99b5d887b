package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/vlm-go/vlm/gguf"
	"github.com/vlm-go/vlm/internal/testmodel"
)

func TestRunJSON(t *testing.T) {
	dir := t.TempDir()
	var out bytes.Buffer
	err := run(context.Background(), []string{"-preset", "tiny", "-projector", "gemma3", "-type", "q8_0", "-seed", "9", "-out", dir, "-json", "-image", "100x40"}, &out)
	require.NoError(t, err)
	var r report
	require.NoError(t, json.Unmarshal(out.Bytes(), &r))
	assert.Equal(t, "tiny-gemma3", r.Spec.Name)
	assert.Equal(t, gguf.TypeQ8_0, r.Spec.WeightType)
	assert.Equal(t, uint64(9), r.Spec.Seed)
	assert.Equal(t, dir, filepath.Dir(r.Model))
	assert.Equal(t, []int{4}, r.ImageChunks)
	want, err := r.Spec.ModelFileSize()
	require.NoError(t, err)
	assert.Equal(t, want, r.ModelBytes)
	st, err := os.Stat(r.MMProj)
	require.NoError(t, err)
	assert.Equal(t, st.Size(), r.MMProjBytes)
	assert.Equal(t, r.Spec.TextParams(), r.TextParams)
	assert.Equal(t, 64, r.NEmbd)
}

func TestRunText(t *testing.T) {
	var out bytes.Buffer
	require.NoError(t, run(context.Background(), []string{"-projector", "mlp", "-out", t.TempDir()}, &out))
	assert.Contains(t, out.String(), "tiny-mlp-f16-")
	assert.Contains(t, out.String(), "64×64 → 16 embeddings in 1 chunk(s)")

	out.Reset()
	require.NoError(t, run(context.Background(), []string{"-list"}, &out))
	for _, name := range testmodel.Presets() {
		assert.Contains(t, out.String(), name)
	}
}

func TestRunUsageErrors(t *testing.T) {
	for _, args := range [][]string{
		{"-preset", "huge"},
		{"-type", "q4_0"},
		{"-preset", "smolvlm-256m", "-projector", "mlp"},
		{"-projector", "resampler"},
		{"-image", "0x5"},
		{"extra"},
		{"-nope"},
	} {
		var out bytes.Buffer
		err := run(context.Background(), append(args, "-out", t.TempDir()), &out)
		assert.ErrorIs(t, err, errUsage, "%v", args)
	}
}
