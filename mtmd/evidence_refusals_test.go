//go:build vlmtest

package mtmd_test

import (
	"math"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/vlm-go/vlm/gguf"
	"github.com/vlm-go/vlm/internal/testmodel"
)

// modelVerdict is vlm's verdict on a text model file, from the file alone
// (what llama.Load checks before llama.cpp sees it).
func modelVerdict(t *testing.T, path string) error {
	t.Helper()
	f, err := gguf.Open(path)
	require.NoError(t, err)
	return gguf.ValidateModel(f)
}

// withAlignment16 rewrites the model src with general.alignment 16 and its
// tensor data starting at a multiple of 32 bytes (aligned) or at 16 past
// one, by padding the metadata with a string of 0 or 16 more bytes.
func withAlignment16(t *testing.T, src, dir, name string, aligned bool) string {
	t.Helper()
	for _, n := range []int{0, 16} {
		path := rewriteGGUF(t, src, dir, name, ggufEdit{
			Alignment: 16,
			AddKVs:    []gguf.KV{{Key: "vlm.test.padding", Value: strings.Repeat("x", n)}},
		})
		f, err := gguf.Open(path)
		require.NoError(t, err)
		require.Equal(t, uint32(16), f.Alignment)
		allAligned := true
		for _, ti := range f.Tensors {
			allAligned = allAligned && (f.DataOffset+int64(ti.Offset))%32 == 0
		}
		if aligned && f.DataOffset%32 == 0 && allAligned || !aligned && f.DataOffset%32 == 16 {
			return path
		}
	}
	t.Fatalf("no padding gives aligned=%v data", aligned)
	return ""
}

// TestAlignment16WithAlignedDataRuns: general.alignment 16 is no problem
// for the pinned llama.cpp as long as the tensor data, which it maps and
// uses in place, starts on a 32-byte boundary of the file (ggml's CPU
// buffer asserts that of the mapping's first tensor): such a file loads and
// answers, unchecked and through vlm. The same file with its data at 16
// past a boundary aborts the process unchecked, and vlm refuses it.
func TestAlignment16WithAlignedDataRuns(t *testing.T) {
	mp, pp := testmodel.TinyPair(t, testmodel.ProjectorMLP, gguf.TypeF16)
	dir := t.TempDir()

	good := withAlignment16(t, mp, dir, "aligned", true)
	require.NoError(t, modelVerdict(t, good), "vlm refuses a file llama.cpp runs")
	o := runUnchecked(t, uncheckedArgs{Model: good})
	t.Logf("aligned, unchecked: %v", o)
	assert.True(t, o.ran() && !o.nonFinite(), "%v", o)
	o = runUnchecked(t, uncheckedArgs{Model: good, Projector: pp})
	assert.True(t, o.ran() && !o.nonFinite(), "%v", o)
	assert.Len(t, greedyImageAnswer(t, good, pp, 4), 4, "vlm loads it and answers")

	bad := withAlignment16(t, mp, dir, "misaligned", false)
	err := modelVerdict(t, bad)
	require.ErrorIs(t, err, gguf.ErrBadAlignment)
	assert.ErrorIs(t, err, gguf.ErrWouldAbort)
	o = runUnchecked(t, uncheckedArgs{Model: bad})
	t.Logf("misaligned, unchecked: %v; vlm: %v", o, err)
	assert.True(t, o.Crashed, "%v", o)

	// alignment 8: the same rule
	bad8 := rewriteGGUF(t, mp, dir, "align8", ggufEdit{Alignment: 8, AddKVs: []gguf.KV{{Key: "vlm.test.padding", Value: "x"}}})
	if f, err := gguf.Open(bad8); err == nil && f.DataOffset%32 != 0 {
		assert.ErrorIs(t, modelVerdict(t, bad8), gguf.ErrWouldAbort)
		o = runUnchecked(t, uncheckedArgs{Model: bad8})
		assert.True(t, o.Crashed, "%v", o)
	}
}

// TestRopeBaseInfinityRuns: ggml steps the rotation frequencies by
// powf(base, -2/n_rot): a base of +Inf (or -Inf) makes that 0 — only the
// first pair of each head rotates — and the logits stay finite, so vlm
// accepts it. A base of 0, a finite negative one or NaN makes every logit
// NaN unchecked, and vlm refuses those.
func TestRopeBaseInfinityRuns(t *testing.T) {
	mp, pp := testmodel.TinyPair(t, testmodel.ProjectorMLP, gguf.TypeF16)
	dir := t.TempDir()
	base := func(name string, v float32) string {
		return rewriteGGUF(t, mp, dir, name, ggufEdit{KV: editKey("llama.rope.freq_base", func(gguf.KV) any { return v })})
	}

	for name, v := range map[string]float32{"+Inf": float32(math.Inf(1)), "-Inf": float32(math.Inf(-1))} {
		inf := base("rope-"+name, v)
		require.NoError(t, modelVerdict(t, inf), "vlm refuses a file llama.cpp runs")
		o := runUnchecked(t, uncheckedArgs{Model: inf})
		t.Logf("%s, unchecked: %v", name, o)
		assert.True(t, o.ran() && o.LogitsN > 0 && !o.nonFinite(), "%v", o)
		assert.Len(t, greedyImageAnswer(t, inf, pp, 4), 4, "vlm loads it and answers")
	}

	for name, v := range map[string]float32{"zero": 0, "negative": -10000, "NaN": float32(math.NaN())} {
		path := base("rope-"+name, v)
		err := modelVerdict(t, path)
		require.ErrorIs(t, err, gguf.ErrBadValue, name)
		assert.NotErrorIs(t, err, gguf.ErrWouldAbort, name)
		assert.ErrorContains(t, err, "llama.rope.freq_base")
		o := runUnchecked(t, uncheckedArgs{Model: path})
		t.Logf("%s, unchecked: %v", name, o)
		assert.True(t, o.ran() && o.LogitsNonFinite > 0, "%s: %v", name, o)
	}
}

// TestFeatureLayerNegativeEncodes: clip_graph_llava runs the encoder up to
// the deepest feature layer and never matches a negative one, so
// clip.vision.feature_layer [-5] encodes exactly as without the key: vlm
// accepts it, and it answers. A layer past the block count indexes past the
// encoder's layers: unchecked that crashes, and vlm refuses it.
func TestFeatureLayerNegativeEncodes(t *testing.T) {
	mp, pp := testmodel.TinyPair(t, testmodel.ProjectorMLP, gguf.TypeF16)
	dir := t.TempDir()
	layers := func(name string, v []int32) string {
		return rewriteGGUF(t, pp, dir, name, ggufEdit{AddKVs: []gguf.KV{{Key: "clip.vision.feature_layer", Value: v}}})
	}
	plain := runUnchecked(t, uncheckedArgs{Model: mp, Projector: pp})
	require.True(t, plain.ran(), "%v", plain)

	neg := layers("neg", []int32{-5})
	require.NoError(t, gguf.ValidateProjector(mustOpen(t, neg)), "vlm refuses a file mtmd runs")
	o := runUnchecked(t, uncheckedArgs{Model: mp, Projector: neg})
	t.Logf("[-5], unchecked: %v", o)
	assert.True(t, o.ran() && !o.nonFinite(), "%v", o)
	assert.Equal(t, plain.EmbdSum, o.EmbdSum, "a negative feature layer is ignored")
	assert.Len(t, greedyImageAnswer(t, mp, neg, 4), 4, "vlm loads it and answers")

	past := layers("past", []int32{1, 40})
	err := gguf.ValidateProjector(mustOpen(t, past))
	require.ErrorIs(t, err, gguf.ErrBadValue)
	assert.ErrorIs(t, err, gguf.ErrWouldAbort)
	o = runUnchecked(t, uncheckedArgs{Model: mp, Projector: past})
	t.Logf("[1 40], unchecked: %v; vlm: %v", o, err)
	assert.True(t, o.Crashed || o.TimedOut, "%v", o)
}

func mustOpen(t *testing.T, path string) *gguf.File {
	t.Helper()
	f, err := gguf.Open(path)
	require.NoError(t, err)
	return f
}
