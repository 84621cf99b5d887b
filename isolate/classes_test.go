package isolate_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/vlm-go/vlm/gguf"
	"github.com/vlm-go/vlm/internal/testmodel"
	"github.com/vlm-go/vlm/isolate"
)

// rewrite copies the GGUF file src into dir with its keys edited: edit
// returns the key and value to write (a new key renames it), or false to
// drop the KV.
func rewrite(t *testing.T, src, dir string, edit func(key string, v any) (string, any, bool)) string {
	t.Helper()
	f, err := gguf.Open(src)
	require.NoError(t, err)
	r, err := os.Open(src)
	require.NoError(t, err)
	defer r.Close()
	w := gguf.NewWriter()
	for _, kv := range f.KVs {
		if kv.Key == gguf.KeyAlignment {
			continue
		}
		key, v, keep := edit(kv.Key, kv.Value)
		if keep {
			require.NoError(t, w.AddKV(key, v))
		}
	}
	for _, ti := range f.Tensors {
		data, err := f.ReadTensor(r, ti.Name)
		require.NoError(t, err)
		require.NoError(t, w.AddTensor(ti.Name, ti.Type, ti.Shape, data))
	}
	out := filepath.Join(t.TempDir(), "edited-"+filepath.Base(src))
	fh, err := os.Create(out)
	require.NoError(t, err)
	_, err = w.WriteTo(fh)
	require.NoError(t, err)
	require.NoError(t, fh.Close())
	return out
}

// relabel copies a llama model as architecture arch (keys renamed).
func relabel(t *testing.T, src, arch string) string {
	return rewrite(t, src, "", func(k string, v any) (string, any, bool) {
		if k == "general.architecture" {
			return k, arch, true
		}
		return strings.Replace(k, "llama.", arch+".", 1), v, true
	})
}

// TestUnvalidatedClassesAreCaught: files of kinds vlm's validation does not
// check completely — a text architecture other than llama, a qwen2-VL
// projector missing the tensors its graph uses — are tried in the child;
// whatever llama.cpp does with them (an error, an abort, a crash), this
// process gets a typed error, or the file works.
func TestUnvalidatedClassesAreCaught(t *testing.T) {
	ctx := context.Background()
	mp, pp := testmodel.TinyPair(t, testmodel.ProjectorMLP, gguf.TypeF16)
	dir := ""
	cases := map[string][2]string{
		"llama weights relabelled dream": {rewrite(t, mp, dir, func(k string, v any) (string, any, bool) {
			if k == "general.architecture" {
				return k, "dream", true
			}
			return strings.Replace(k, "llama.", "dream.", 1), v, true
		}), ""},
		"llama weights relabelled baichuan": {rewrite(t, mp, dir, func(k string, v any) (string, any, bool) {
			if k == "general.architecture" {
				return k, "baichuan", true
			}
			return strings.Replace(k, "llama.", "baichuan.", 1), v, true
		}), ""},
		"llama weights relabelled smallthinker": {relabel(t, mp, "smallthinker"), ""},
		"llama weights relabelled llada-moe":    {relabel(t, mp, "llada-moe"), ""},
		"mlp projector relabelled qwen2vl_merger": {mp, rewrite(t, pp, dir, func(k string, v any) (string, any, bool) {
			if k == "clip.projector_type" {
				return k, "qwen2vl_merger", true
			}
			return k, v, true
		})},
	}
	for name, c := range cases {
		err := isolate.Check(ctx, c[0], c[1], isolate.Options{})
		// The pinned llama.cpp crashed on every one of these (SIGABRT or
		// SIGSEGV, at load, context creation or encoding). vlm's validation
		// now refuses them in the child (ErrFailed): the qwen2vl_merger's
		// tensors are validated too (the relabelled mlp projector lacks
		// v.patch_embd.weight.1 and has a patch bias).
		require.Error(t, err, name)
		if !errors.Is(err, isolate.ErrCrashed) && !errors.Is(err, isolate.ErrFailed) && !errors.Is(err, isolate.ErrTimeout) {
			t.Fatalf("%s: untyped error %v", name, err)
		}
		t.Logf("%s: %v", name, err)
	}
	// This process still answers the good pair.
	require.NoError(t, isolate.Check(ctx, mp, pp, isolate.Options{}))
}
