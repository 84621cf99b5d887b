package vlm

import (
	"debug/elf"
	"errors"
	"os"
	"path/filepath"
	"runtime"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/vlm-go/vlm/gguf"
	"github.com/vlm-go/vlm/internal/testmodel"
)

func TestModuleBackend(t *testing.T) {
	for name, want := range map[string]string{
		"libggml-cuda.so":         "cuda",
		"libggml-cpu-haswell.so":  "cpu",
		"libggml-vulkan.dylib":    "vulkan",
		"libggml-base.so":         "",
		"libggml.so":              "",
		"libggml-.so":             "",
		"libggml-cuda.so.0":       "",
		"libcudart.so":            "",
		"ggml-cuda.dll":           "",
		"libggml-cuda.so.partial": "",
	} {
		assert.Equal(t, want, moduleBackend(name), name)
	}
}

func TestLoadBackendsErrors(t *testing.T) {
	empty := t.TempDir()
	_, err := LoadBackends(empty)
	require.ErrorIs(t, err, ErrNoBackend)
	assert.Contains(t, err.Error(), "./build.sh cuda")

	_, err = LoadBackends(filepath.Join(empty, "missing"))
	require.ErrorIs(t, err, ErrNoBackend)
	require.ErrorIs(t, err, os.ErrNotExist)

	other := filepath.Join(empty, "notes.txt")
	require.NoError(t, os.WriteFile(other, []byte("hello"), 0o644))
	_, err = LoadBackends(other)
	require.ErrorIs(t, err, ErrNoBackend)

	// A file with a module's name that is no shared library: dlopen's
	// reason comes back, and the process stays healthy.
	bad := t.TempDir()
	require.NoError(t, os.WriteFile(filepath.Join(bad, "libggml-fake.so"), []byte("not an ELF file"), 0o644))
	devs, err := LoadBackends(bad)
	require.ErrorIs(t, err, ErrBackend)
	assert.Empty(t, devs)
	if runtime.GOOS == "linux" {
		assert.Contains(t, err.Error(), "libggml-fake.so")
	}
	assert.NotEmpty(t, Devices())
}

// A module for a backend the program already has (the CPU is compiled in)
// is not loaded again: its devices come back, without touching the file.
func TestLoadBackendsSkipsRegisteredBackends(t *testing.T) {
	dir := t.TempDir()
	require.NoError(t, os.WriteFile(filepath.Join(dir, "libggml-cpu-haswell.so"), []byte("never opened"), 0o644))
	before := len(Devices())
	devs, err := LoadBackends(dir)
	require.NoError(t, err)
	require.NotEmpty(t, devs)
	for _, d := range devs {
		assert.Equal(t, DeviceCPU, d.Type)
	}
	assert.Len(t, Devices(), before)
}

func TestBackendSearchPath(t *testing.T) {
	a, b := t.TempDir(), t.TempDir()
	t.Setenv(BackendPathEnv, a+string(filepath.ListSeparator)+b)
	assert.Equal(t, []searchDir{{path: a}, {path: b}}, backendSearchPath())

	t.Setenv(BackendPathEnv, "")
	assert.Empty(t, backendSearchPath(), "set but empty: load nothing")

	require.NoError(t, os.Unsetenv(BackendPathEnv))
	dirs := backendSearchPath()
	require.Len(t, dirs, 2)
	exe, err := os.Executable()
	require.NoError(t, err)
	assert.Equal(t, searchDir{path: filepath.Dir(exe), optional: true}, dirs[0])
	// The module root: this package's folder (the test runs in it).
	wd, err := os.Getwd()
	require.NoError(t, err)
	if _, file, _, _ := runtime.Caller(0); !filepath.IsAbs(file) {
		// A -trimpath build (build.sh's): VLM_CHECKOUT names the checkout.
		t.Setenv(checkoutEnv, wd)
		dirs = backendSearchPath()
		require.Len(t, dirs, 2)
		t.Setenv(checkoutEnv, "")
		assert.Len(t, backendSearchPath(), 1, "trimmed paths and no VLM_CHECKOUT: beside the executable only")
	}
	assert.Equal(t, searchDir{path: filepath.Join(wd, "third_party", "build", "cuda"), optional: true}, dirs[1])
}

func TestHasGPUAndCheckGPU(t *testing.T) {
	gpus := 0
	for _, d := range Devices() {
		if d.Type == DeviceGPU || d.Type == DeviceIntegrated {
			gpus++
			assert.Positive(t, d.TotalMemory, "%v", d)
		}
	}
	assert.Equal(t, gpus > 0, HasGPU())
	err := CheckGPU()
	if gpus > 0 {
		assert.NoError(t, err)
		return
	}
	require.ErrorIs(t, err, ErrNoGPU)
	assert.Contains(t, err.Error(), "./build.sh cuda")
	assert.Contains(t, err.Error(), BackendPathEnv)
	assert.False(t, RequireCUDA, "a -tags cuda build without a CUDA device exits in Init")
}

func TestBackendNamesIncludeTheCPU(t *testing.T) {
	assert.Contains(t, BackendNames(), "CPU")
}

// TestProgramExportsGGML checks that the binary exports ggml's symbols
// (-rdynamic), so that a loaded backend module binds to the program's copy
// of ggml instead of bringing its own.
func TestProgramExportsGGML(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("-rdynamic is added on Linux")
	}
	exe, err := os.Executable()
	require.NoError(t, err)
	f, err := elf.Open(exe)
	require.NoError(t, err)
	defer f.Close()
	syms, err := f.DynamicSymbols()
	require.NoError(t, err)
	exported := map[string]bool{}
	for _, s := range syms {
		if s.Section != elf.SHN_UNDEF {
			exported[s.Name] = true
		}
	}
	// A few of the symbols the CUDA module takes from ggml's base library.
	for _, name := range []string{"ggml_nbytes", "ggml_backend_buffer_init", "ggml_log_internal", "ggml_abort", "ggml_aligned_malloc", "gguf_init_from_file"} {
		assert.True(t, exported[name], "the program does not export %s", name)
	}
}

// TestLoadBackendModule loads the module that VLM_TEST_BACKEND_MODULE names
// (a file), e.g. ggml's CPU backend built as a module by
// `VLM_BACKEND=cpu third_party/cuda/build.sh GGML_SRC DIR` and renamed to
// libggml-cputest.so, to test loading without a GPU. Run with
// LD_DEBUG=bindings to see which copy of ggml its symbols bind to.
func TestLoadBackendModule(t *testing.T) {
	path := os.Getenv("VLM_TEST_BACKEND_MODULE")
	if path == "" {
		t.Skip("set VLM_TEST_BACKEND_MODULE to a backend module file to load it")
	}
	devs, err := LoadBackends(path)
	require.NoError(t, err)
	require.NotEmpty(t, devs)
	for _, d := range devs {
		t.Logf("loaded device %v", d)
	}
	again, err := LoadBackends(path)
	require.NoError(t, err)
	assert.Equal(t, len(devs), len(again), "loading twice adds nothing")
	if errors.Is(CheckGPU(), ErrNoGPU) {
		t.Log("no GPU among the devices")
	}
}

// TestBackendsOutliveTheScheduler checks the fix for the teardown crash
// (backend.c): llama_free and mtmd_free free the context's backends only
// after its scheduler, which calls each backend's reset. On the CPU the
// frees are deferred the same way as on a GPU.
func TestBackendsOutliveTheScheduler(t *testing.T) {
	modelPath, projPath := testmodel.TinyPair(t, testmodel.ProjectorIdefics3, gguf.TypeF16)
	m, err := LoadModel(modelPath, ModelParams{GPULayers: -1})
	require.NoError(t, err)
	defer m.Free()
	for i := 0; i < 3; i++ {
		before := deferredBackendFrees()
		x, err := NewContext(m, ContextParams{NCtx: 256, NBatch: 64, Threads: 2})
		require.NoError(t, err)
		x.Free()
		assert.Greater(t, deferredBackendFrees(), before, "llama_free deferred no backend free")

		before = deferredBackendFrees()
		p, err := LoadProjector(projPath, m, ProjectorParams{UseGPU: true, Threads: 2})
		require.NoError(t, err)
		p.Free()
		assert.Greater(t, deferredBackendFrees(), before, "mtmd_free deferred no backend free")
	}
}

// TestBackendDeferralHasNoFixedLimit frees more backends inside one wrapped
// call than the old fixed table held (64): every free waits for the end of
// the call; the old code freed the 65th and later at once, in the order
// that crashes the CUDA backend.
func TestBackendDeferralHasNoFixedLimit(t *testing.T) {
	for _, n := range []int{1, 64, 65, 300} {
		early, total, err := backendTestDeferral(n)
		require.NoError(t, err)
		assert.Zero(t, early, "%d frees: freed before the wrapped call ended", n)
		assert.Equal(t, n, total)
	}
}
