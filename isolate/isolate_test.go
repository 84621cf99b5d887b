package isolate_test

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/vlm-go/vlm/gguf"
	"github.com/vlm-go/vlm/internal/testmodel"
	"github.com/vlm-go/vlm/isolate"
)

func TestMain(m *testing.M) {
	isolate.Main()
	os.Exit(m.Run())
}

// TestCheck: a good pair passes its trial; a file vlm refuses fails it
// with the reason; a child that crashes or hangs becomes ErrCrashed or
// ErrTimeout with its last log lines, and this process goes on.
func TestCheck(t *testing.T) {
	ctx := context.Background()
	for _, pt := range testmodel.ProjectorTypes() {
		mp, pp := testmodel.TinyPair(t, pt, gguf.TypeF16)
		require.NoError(t, isolate.Check(ctx, mp, pp, isolate.Options{}), string(pt))
		require.NoError(t, isolate.Check(ctx, mp, "", isolate.Options{}), "%s text only", pt)
	}
	mp, pp := testmodel.TinyPair(t, testmodel.ProjectorMLP, gguf.TypeF16)

	bad := filepath.Join(t.TempDir(), "bad.gguf")
	require.NoError(t, os.WriteFile(bad, []byte("version https://git-lfs.github.com/spec/v1\noid sha256:abc\nsize 123\n"), 0o644))
	err := isolate.Check(ctx, bad, pp, isolate.Options{})
	require.ErrorIs(t, err, isolate.ErrFailed)
	assert.Contains(t, err.Error(), "Git LFS")
	assert.Contains(t, err.Error(), "load model")

	t.Setenv("VLM_ISOLATE_TEST_FAULT", "abort")
	err = isolate.Check(ctx, mp, pp, isolate.Options{})
	require.ErrorIs(t, err, isolate.ErrCrashed)
	assert.Contains(t, err.Error(), "SIGABRT")
	t.Log(err)

	t.Setenv("VLM_ISOLATE_TEST_FAULT", "hang")
	start := time.Now()
	err = isolate.Check(ctx, mp, pp, isolate.Options{Timeout: time.Second})
	require.ErrorIs(t, err, isolate.ErrTimeout)
	assert.Less(t, time.Since(start), 10*time.Second)

	t.Setenv("VLM_ISOLATE_TEST_FAULT", "")
	require.NoError(t, isolate.Check(ctx, mp, pp, isolate.Options{}), "the process still checks files")
}
