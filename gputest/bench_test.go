package gputest_test

import (
	"context"
	"math/rand/v2"
	"os"
	"runtime"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/vlm-go/vlm"
	"github.com/vlm-go/vlm/gguf"
	"github.com/vlm-go/vlm/internal/llamaaccess"
	"github.com/vlm-go/vlm/internal/testmodel"
	"github.com/vlm-go/vlm/llama"
	"github.com/vlm-go/vlm/mtmd"
)

// Benchmark sizes, as llama-bench's pp512 and tg128.
const (
	benchPrompt = 512
	benchGen    = 128
)

// benchSpec is SmolVLM-256M's shapes with Q8_0 weights (VLM_BENCH_TYPE=f16
// for F16) and one 512×512 tile per image (PreprocImageSize 0): the encode
// benchmark measures one pass of the vision tower, where the real preset
// would cut every image into 17 tiles.
func benchSpec() (testmodel.Spec, error) {
	spec, err := testmodel.Preset(testmodel.PresetSmolVLM256M)
	if err != nil {
		return spec, err
	}
	spec.WeightType = gguf.TypeQ8_0
	if os.Getenv("VLM_BENCH_TYPE") == "f16" {
		spec.WeightType = gguf.TypeF16
	}
	spec.Projector.PreprocImageSize = 0
	return spec, nil
}

// benchCacheDir is where the benchmark model is written: $VLM_TESTMODEL_CACHE
// or testmodel's default cache.
func benchCacheDir() (string, error) {
	if d := os.Getenv("VLM_TESTMODEL_CACHE"); d != "" {
		return d, nil
	}
	return testmodel.DefaultCacheDir()
}

// TestPrepareBenchModel writes the benchmark model into the cache when
// VLM_BENCH_PREPARE=1 (scripts/gpu-check.sh does this while the CUDA
// backend compiles); otherwise the first benchmark does it.
func TestPrepareBenchModel(t *testing.T) {
	if os.Getenv("VLM_BENCH_PREPARE") != "1" {
		t.Skip("set VLM_BENCH_PREPARE=1 to write the benchmark model")
	}
	spec, err := benchSpec()
	require.NoError(t, err)
	dir, err := benchCacheDir()
	require.NoError(t, err)
	start := time.Now()
	mp, pp, err := testmodel.Ensure(context.Background(), dir, spec)
	require.NoError(t, err)
	t.Logf("%s, %s ready in %v", mp, pp, time.Since(start).Round(time.Millisecond))
}

type benchSetup struct {
	model *llama.Model
	proj  *mtmd.Projector
	x     *llama.Context
	batch *llama.Batch
	one   *llama.Batch
	chunk *mtmd.Chunks
	image int // index of the image chunk
	toks  []llama.Token
}

var (
	benchMu     sync.Mutex
	benchByMode = map[string]*benchSetup{}
)

// setupFor loads the benchmark model once per mode ("cpu" or "gpu").
func setupFor(b *testing.B, mode string) *benchSetup {
	b.Helper()
	switch {
	case mode == "gpu" && !vlm.HasGPU() && !onCPU:
		b.Skip(skipNoGPU)
	case mode == "cpu" && vlm.HasGPU():
		b.Skip("CPU numbers come from a process without a GPU backend (llama.cpp moves large CPU batches to a loaded GPU): run with VLM_BACKEND_PATH= (set, empty)")
	}
	benchMu.Lock()
	defer benchMu.Unlock()
	if s := benchByMode[mode]; s != nil {
		return s
	}
	spec, err := benchSpec()
	require.NoError(b, err)
	dir, err := benchCacheDir()
	require.NoError(b, err)
	ctx := context.Background()
	mp, pp, err := testmodel.Ensure(ctx, dir, spec)
	require.NoError(b, err)
	gpu := mode == "gpu"
	threads := runtime.NumCPU()
	if v := os.Getenv("VLM_BENCH_THREADS"); v != "" { // CPU threads, e.g. fewer beside a GPU
		n, err := strconv.Atoi(v)
		require.NoError(b, err, "VLM_BENCH_THREADS")
		threads = n
	}
	layers := 0
	if gpu {
		layers = -1
	}
	s := &benchSetup{}
	s.model, err = llama.Load(ctx, mp, llama.LoadOptions{GPULayers: layers, NoGPU: layers == 0})
	require.NoError(b, err)
	s.proj, err = mtmd.Load(ctx, pp, s.model, mtmd.Options{NoGPU: !gpu, Threads: threads, Warmup: true})
	require.NoError(b, err)
	s.x, err = s.model.NewContext(llama.ContextOptions{
		ContextSize: benchPrompt + benchGen + 64, BatchSize: benchPrompt, UBatchSize: benchPrompt, Threads: threads,
	})
	require.NoError(b, err)
	s.batch, err = s.x.NewBatch(benchPrompt)
	require.NoError(b, err)
	s.one, err = s.x.NewBatch(1)
	require.NoError(b, err)
	info, err := s.model.Info()
	require.NoError(b, err)
	rng := rand.New(rand.NewPCG(1, 2))
	s.toks = make([]llama.Token, benchPrompt+benchGen)
	for i := range s.toks {
		s.toks[i] = llama.Token(300 + rng.IntN(info.NVocab-300))
	}
	img, err := mtmd.ImageFromGo(testImage(512, 512))
	require.NoError(b, err)
	s.chunk, err = s.proj.Tokenize(ctx, s.proj.Marker(), []*mtmd.Image{img}, mtmd.TokenizeOptions{})
	require.NoError(b, err)
	s.image = -1
	for i, ch := range s.chunk.All() {
		if ch.Type == mtmd.ChunkImage && s.image < 0 {
			s.image = i
		}
	}
	require.GreaterOrEqual(b, s.image, 0, "no image chunk")
	benchByMode[mode] = s
	return s
}

func closeBenchSetups() {
	benchMu.Lock()
	defer benchMu.Unlock()
	for mode, s := range benchByMode {
		s.chunk.Close()
		s.one.Close()
		s.batch.Close()
		s.x.Close()
		s.proj.Close()
		s.model.Close()
		delete(benchByMode, mode)
	}
}

func (s *benchSetup) sync(b *testing.B) {
	require.NoError(b, llamaaccess.ContextNative(s.x, func(c *vlm.LlamaContext) error { c.Synchronize(); return nil }))
}

// BenchmarkSmolVLM measures SmolVLM-256M shapes on the CPU and on the GPU:
// prefill (512 tokens in one batch, as llama-bench's pp512), decode (128
// tokens one at a time from an empty cache, as tg128; "+logits" also copies
// each step's logits into Go, as generation does) and encoding one 512×512
// image. Metrics: tok/s and ms/image.
func BenchmarkSmolVLM(b *testing.B) {
	ctx := context.Background()
	for _, mode := range []string{"cpu", "gpu"} {
		b.Run(mode, func(b *testing.B) {
			s := setupFor(b, mode)
			b.Run("prefill512", func(b *testing.B) {
				for i := 0; i < b.N; i++ {
					require.NoError(b, s.x.ClearMemory())
					s.batch.Clear()
					require.NoError(b, s.batch.AddSequence(s.toks[:benchPrompt], 0, 0, true))
					require.NoError(b, s.x.Decode(ctx, s.batch))
					s.sync(b)
				}
				b.ReportMetric(float64(benchPrompt*b.N)/b.Elapsed().Seconds(), "tok/s")
			})
			for _, logits := range []bool{false, true} {
				name := "decode128"
				if logits {
					name += "+logits"
				}
				b.Run(name, func(b *testing.B) {
					for i := 0; i < b.N; i++ {
						b.StopTimer()
						require.NoError(b, s.x.ClearMemory())
						b.StartTimer()
						for j := 0; j < benchGen; j++ {
							s.one.Clear()
							require.NoError(b, s.one.Add(s.toks[j], int32(j), true))
							require.NoError(b, s.x.Decode(ctx, s.one))
							if logits {
								_, err := s.x.Logits(-1)
								require.NoError(b, err)
							} else {
								s.sync(b)
							}
						}
					}
					b.ReportMetric(float64(benchGen*b.N)/b.Elapsed().Seconds(), "tok/s")
				})
			}
			b.Run("encode", func(b *testing.B) {
				for i := 0; i < b.N; i++ {
					_, err := s.proj.Encode(ctx, s.chunk, s.image)
					require.NoError(b, err)
				}
				b.ReportMetric(b.Elapsed().Seconds()*1000/float64(b.N), "ms/image")
			})
		})
	}
}
