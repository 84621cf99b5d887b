package llama_test

import (
	"encoding/json"
	"os"
	"os/exec"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/vlm-go/vlm"
	"github.com/vlm-go/vlm/gguf"
	"github.com/vlm-go/vlm/llama"
)

// kernelRun is what one process computes for TestCPUKernelsAgree.
type kernelRun struct {
	Kernels string
	Tokens  map[string][]llama.Token
	Logits  map[string][]float32
}

func computeKernelRun(t *testing.T) kernelRun {
	r := kernelRun{Kernels: vlm.CPUKernels(), Tokens: map[string][]llama.Token{}, Logits: map[string][]float32{}}
	for _, typ := range []gguf.TensorType{gguf.TypeF32, gguf.TypeF16, gguf.TypeQ8_0} {
		m, _ := loadTiny(t, typ)
		prompt, err := m.Vocab().Tokenize("the quick brown fox jumps over the lazy dog", true, false)
		require.NoError(t, err)
		x := newCtx(t, m, llama.ContextOptions{ContextSize: 128, Threads: 1})
		toks, logits := greedy(t, x, prompt, 8)
		r.Tokens[typ.String()], r.Logits[typ.String()] = toks, logits
	}
	return r
}

// TestCPUKernelsAgree runs the same model with the AVX-512 kernels and, in a
// child process with VLM_CPU_VARIANT=x86-64-v3, with the baseline kernels:
// each process reports the kernels it chose, and their logits agree to float
// rounding (they are not bit-equal: the two copies sum in another order,
// which shows that each process ran its own copy).
func TestCPUKernelsAgree(t *testing.T) {
	if out := os.Getenv("VLM_TEST_KERNELS_OUT"); out != "" {
		data, err := json.Marshal(computeKernelRun(t))
		require.NoError(t, err)
		require.NoError(t, os.WriteFile(out, data, 0o644))
		return
	}
	if k := vlm.CPUKernels(); k != "avx512" {
		t.Skipf("this process runs the %q kernels (a CPU without AVX-512, or a build for one target): there is no second copy to compare with", k)
	}
	here := computeKernelRun(t)

	exe, err := os.Executable()
	require.NoError(t, err)
	out := t.TempDir() + "/run.json"
	cmd := exec.Command(exe, "-test.run=^TestCPUKernelsAgree$", "-test.count=1")
	cmd.Env = append(os.Environ(), "VLM_CPU_VARIANT=x86-64-v3", "VLM_TEST_KERNELS_OUT="+out)
	msg, err := cmd.CombinedOutput()
	require.NoError(t, err, "child: %s", msg)
	data, err := os.ReadFile(out)
	require.NoError(t, err)
	var base kernelRun
	require.NoError(t, json.Unmarshal(data, &base))
	assert.Equal(t, "x86-64-v3", base.Kernels, "VLM_CPU_VARIANT=x86-64-v3 keeps the baseline")

	differ := false
	for typ, a := range here.Logits {
		b := base.Logits[typ]
		require.Len(t, b, len(a), typ)
		scale := 0.0
		for _, l := range a {
			scale = max(scale, float64(abs32(l)))
		}
		worst := 0.0
		for i := range a {
			if a[i] != b[i] {
				differ = true
			}
			worst = max(worst, float64(abs32(a[i]-b[i])))
		}
		t.Logf("%s: largest logit difference %.3g (largest logit %.3g)", typ, worst, scale)
		assert.Less(t, worst, 1e-2*scale+1e-3, "%s: the two kernel copies disagree beyond rounding", typ)
		// Greedy answers agree on their first token at least (later ones may
		// flip where two logits are within rounding of each other).
		assert.Equal(t, here.Tokens[typ][0], base.Tokens[typ][0], typ)
	}
	assert.True(t, differ, "the AVX-512 and x86-64-v3 runs gave bit-equal logits for every type: did both run the same copy?")
}

func abs32(f float32) float32 {
	if f < 0 {
		return -f
	}
	return f
}
