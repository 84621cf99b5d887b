package gputest_test

import (
	"context"
	"encoding/json"
	"fmt"
	"image"
	"image/color"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/vlm-go/vlm"
	"github.com/vlm-go/vlm/gguf"
	"github.com/vlm-go/vlm/internal/testmodel"
	"github.com/vlm-go/vlm/llama"
	"github.com/vlm-go/vlm/mtmd"
	"github.com/vlm-go/vlm/sampler"
)

const skipNoGPU = "no GPU backend loaded: run ./build.sh cuda and set VLM_BACKEND_PATH"

func TestMain(m *testing.M) {
	code := m.Run()
	// Free what the benchmarks kept loaded: teardown after GPU work is what
	// crashed with two copies of ggml in the process.
	closeBenchSetups()
	os.Exit(code)
}

// onCPU runs the GPU tests and benchmarks without a GPU (everything then
// runs on the CPU): a check of the tests themselves, not of a GPU.
var onCPU = os.Getenv("VLM_GPU_TESTS_ON_CPU") == "1"

func requireGPU(t testing.TB) {
	t.Helper()
	if !vlm.HasGPU() && !onCPU {
		t.Skip(skipNoGPU)
	}
}

func TestGPUDevices(t *testing.T) {
	if !vlm.HasGPU() {
		t.Skip(skipNoGPU)
	}
	for _, d := range vlm.Devices() {
		t.Logf("device %d: %v", d.Index, d)
		if d.Type == vlm.DeviceGPU {
			assert.Positive(t, d.TotalMemory)
			assert.LessOrEqual(t, d.FreeMemory, d.TotalMemory)
		}
	}
	t.Logf("backends: %v", vlm.BackendNames())
	require.NoError(t, vlm.CheckGPU())
}

// testImage returns a deterministic w×h picture.
func testImage(w, h int) image.Image {
	img := image.NewNRGBA(image.Rect(0, 0, w, h))
	for y := 0; y < h; y++ {
		for x := 0; x < w; x++ {
			img.SetNRGBA(x, y, color.NRGBA{uint8(x * 255 / w), uint8(y * 255 / h), uint8((x * y) % 251), 255})
		}
	}
	return img
}

// result is what one greedy run gives: the logits of the first generated
// step and the greedy tokens.
type result struct {
	Logits []float32     `json:"logits"`
	Tokens []llama.Token `json:"tokens"`
}

// greedy loads the pair on the GPU or the CPU, evaluates a prompt with one
// 64×64 image (5 chunks on the tiny idefics3 preset) and generates n tokens
// greedily.
func greedy(t testing.TB, modelPath, projPath string, gpu bool, n int) result {
	t.Helper()
	ctx := context.Background()
	layers := 0
	if gpu {
		layers = -1
	}
	m, err := llama.Load(ctx, modelPath, llama.LoadOptions{GPULayers: layers, NoGPU: layers == 0})
	require.NoError(t, err)
	defer m.Close()
	p, err := mtmd.Load(ctx, projPath, m, mtmd.Options{NoGPU: !gpu, Threads: runtime.NumCPU()})
	require.NoError(t, err)
	defer p.Close()
	x, err := m.NewContext(llama.ContextOptions{ContextSize: 512, BatchSize: 256, Threads: runtime.NumCPU()})
	require.NoError(t, err)
	defer x.Close()
	img, err := mtmd.ImageFromGo(testImage(64, 64))
	require.NoError(t, err)
	chunks, err := p.Tokenize(ctx, "Describe "+p.Marker()+" please.", []*mtmd.Image{img}, mtmd.TokenizeOptions{AddSpecial: true, ParseSpecial: true})
	require.NoError(t, err)
	defer chunks.Close()
	pos, _, err := p.Eval(ctx, x, chunks, mtmd.EvalOptions{Logits: true})
	require.NoError(t, err)
	b, err := x.NewBatch(1)
	require.NoError(t, err)
	defer b.Close()
	var r result
	for i := 0; i < n; i++ {
		logits, err := x.Logits(-1)
		require.NoError(t, err)
		if i == 0 {
			r.Logits = logits
		}
		tok := llama.Token(argmax(logits))
		r.Tokens = append(r.Tokens, tok)
		b.Clear()
		require.NoError(t, b.Add(tok, pos, true))
		pos++
		require.NoError(t, x.Decode(ctx, b))
	}
	return r
}

func argmax(v []float32) int {
	best := 0
	for i := range v {
		if v[i] > v[best] {
			best = i
		}
	}
	return best
}

func topK(v []float32, k int) []int {
	idx := make([]int, len(v))
	for i := range idx {
		idx[i] = i
	}
	slices.SortStableFunc(idx, func(a, b int) int { return -cmpFloat(v[a], v[b]) })
	return idx[:min(k, len(idx))]
}

func cmpFloat(a, b float32) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// The child process that computes the CPU reference of TestCPUAndGPUAgree
// is this test binary, run with the variables below and no GPU backend.
const (
	refModelEnv = "VLM_GPU_REF_MODEL"
	refProjEnv  = "VLM_GPU_REF_PROJ"
	refOutEnv   = "VLM_GPU_REF_OUT"
	refTokens   = 16
)

// TestCPUReference runs only as TestCPUAndGPUAgree's child process.
func TestCPUReference(t *testing.T) {
	out := os.Getenv(refOutEnv)
	if out == "" {
		t.Skip("the CPU half of TestCPUAndGPUAgree (run by it in a child process)")
	}
	require.False(t, vlm.HasGPU(), "the CPU reference must run in a process without a GPU backend")
	t.Logf("devices: %v", vlm.Devices())
	r := greedy(t, os.Getenv(refModelEnv), os.Getenv(refProjEnv), false, refTokens)
	data, err := json.Marshal(r)
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(out, data, 0o644))
}

// cpuReference computes the CPU result in a child process without a GPU
// backend (VLM_BACKEND_PATH set empty): in a process with one, llama.cpp
// may move large CPU batches to the GPU.
func cpuReference(t *testing.T, modelPath, projPath string) result {
	t.Helper()
	if vlm.RequireCUDA {
		// A -tags cuda binary exits without a GPU: compute in process.
		t.Log("built with -tags cuda: CPU reference computed in this process (GPULayers 0)")
		return greedy(t, modelPath, projPath, false, refTokens)
	}
	out := filepath.Join(t.TempDir(), "ref.json")
	cmd := exec.Command(os.Args[0], "-test.run=^TestCPUReference$", "-test.count=1")
	cmd.Env = append(os.Environ(), vlm.BackendPathEnv+"=", refModelEnv+"="+modelPath, refProjEnv+"="+projPath, refOutEnv+"="+out)
	msg, err := cmd.CombinedOutput()
	require.NoError(t, err, "CPU reference process:\n%s", msg)
	data, err := os.ReadFile(out)
	require.NoError(t, err, "CPU reference process:\n%s", msg)
	var r result
	require.NoError(t, json.Unmarshal(data, &r))
	return r
}

// TestCPUAndGPUAgree runs the same greedy prompt (text and one image) on the
// CPU and on the GPU: the first step's logits must agree within 1e-2
// relative error (max |gpu-cpu| / max |cpu|).
func TestCPUAndGPUAgree(t *testing.T) {
	requireGPU(t)
	modelPath, projPath := testmodel.TinyPair(t, testmodel.ProjectorIdefics3, gguf.TypeF16)
	cpu := cpuReference(t, modelPath, projPath)
	gpu := greedy(t, modelPath, projPath, true, refTokens)
	require.Len(t, gpu.Logits, len(cpu.Logits))

	var maxDiff, maxRef, sumSq, refSq float64
	for i := range cpu.Logits {
		d := math.Abs(float64(gpu.Logits[i] - cpu.Logits[i]))
		maxDiff = max(maxDiff, d)
		maxRef = max(maxRef, math.Abs(float64(cpu.Logits[i])))
		sumSq += d * d
		refSq += float64(cpu.Logits[i]) * float64(cpu.Logits[i])
	}
	rel := maxDiff / maxRef
	same := 0
	for same < len(cpu.Tokens) && same < len(gpu.Tokens) && cpu.Tokens[same] == gpu.Tokens[same] {
		same++
	}
	t.Logf("first-step logits (%d): max |gpu-cpu| %.3g, max |cpu| %.3g, relative %.3g (L2 relative %.3g)",
		len(cpu.Logits), maxDiff, maxRef, rel, math.Sqrt(sumSq/refSq))
	t.Logf("top-5 cpu %v gpu %v", topK(cpu.Logits, 5), topK(gpu.Logits, 5))
	t.Logf("greedy tokens cpu %v", cpu.Tokens)
	t.Logf("greedy tokens gpu %v (first %d of %d equal)", gpu.Tokens, same, len(cpu.Tokens))
	assert.Less(t, rel, 1e-2, "first-step logits differ by more than 1e-2 relative")
	assert.Equal(t, cpu.Tokens[0], gpu.Tokens[0], "first greedy token")
}

// TestGPUCycles loads, encodes, generates and frees on the GPU again and
// again (200 times; VLM_GPU_CYCLES changes it): the process must not crash
// and GPU memory must not leak.
func TestGPUCycles(t *testing.T) {
	requireGPU(t)
	cycles := 200
	if v := os.Getenv("VLM_GPU_CYCLES"); v != "" {
		n, err := strconv.Atoi(v)
		require.NoError(t, err, "VLM_GPU_CYCLES")
		cycles = n
	}
	modelPath, projPath := testmodel.TinyPair(t, testmodel.ProjectorIdefics3, gguf.TypeQ8_0)
	ctx := context.Background()
	img, err := mtmd.ImageFromGo(testImage(64, 64))
	require.NoError(t, err)

	var first []llama.Token
	var free0 uint64
	start := time.Now()
	for i := 0; i < cycles; i++ {
		m, err := llama.Load(ctx, modelPath, llama.LoadOptions{GPULayers: -1})
		require.NoError(t, err, "cycle %d", i)
		p, err := mtmd.Load(ctx, projPath, m, mtmd.Options{Threads: runtime.NumCPU()})
		require.NoError(t, err, "cycle %d", i)
		x, err := m.NewContext(llama.ContextOptions{ContextSize: 256, BatchSize: 128, Threads: runtime.NumCPU()})
		require.NoError(t, err, "cycle %d", i)
		chunks, err := p.Tokenize(ctx, "Describe "+p.Marker()+" please.", []*mtmd.Image{img}, mtmd.TokenizeOptions{AddSpecial: true, ParseSpecial: true})
		require.NoError(t, err, "cycle %d", i)
		pos, stats, err := p.Eval(ctx, x, chunks, mtmd.EvalOptions{Logits: true})
		require.NoError(t, err, "cycle %d", i)
		require.Positive(t, stats.ImagesEncoded)
		s, err := sampler.New(m, sampler.Config{})
		require.NoError(t, err)
		var res llama.GenerateResult
		gen := llama.Generate(ctx, x, s, llama.GenerateOptions{Pos: pos, MaxTokens: 8})
		for _, err := range gen.Tokens() {
			require.NoError(t, err, "cycle %d", i)
		}
		res = gen.Result()
		if i == 0 {
			first = res.Tokens
		} else {
			require.Equal(t, first, res.Tokens, "cycle %d generated other tokens", i)
		}
		// Free in varying orders: the model first (freed when its last
		// child goes), or the children first.
		if i%2 == 1 {
			require.NoError(t, m.Close())
		}
		require.NoError(t, s.Close())
		require.NoError(t, chunks.Close())
		require.NoError(t, x.Close())
		require.NoError(t, p.Close())
		require.NoError(t, m.Close())
		if i == 0 {
			free0 = gpuFree()
		}
	}
	elapsed := time.Since(start)
	free1 := gpuFree()
	t.Logf("%d cycles in %v (%v each); GPU free memory after cycle 1: %d MiB, after the last: %d MiB; tokens %v",
		cycles, elapsed.Round(time.Millisecond), (elapsed / time.Duration(max(cycles, 1))).Round(time.Microsecond), free0>>20, free1>>20, first)
	assert.InDelta(t, float64(free0), float64(free1), 256<<20, "GPU memory leaked over %d cycles", cycles)
}

// gpuFree returns the free memory of the first GPU.
func gpuFree() uint64 {
	for _, d := range vlm.Devices() {
		if d.Type == vlm.DeviceGPU {
			return d.FreeMemory
		}
	}
	return 0
}

func TestSkipMessage(t *testing.T) {
	if vlm.HasGPU() || onCPU {
		t.Skip("a GPU is loaded")
	}
	err := vlm.CheckGPU()
	require.ErrorIs(t, err, vlm.ErrNoGPU)
	assert.Contains(t, fmt.Sprint(err), "./build.sh cuda")
}
