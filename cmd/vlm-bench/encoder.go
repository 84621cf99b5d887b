package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"time"

	"github.com/vlm-go/vlm"
	"github.com/vlm-go/vlm/gguf"
	"github.com/vlm-go/vlm/internal/testmodel"
	"github.com/vlm-go/vlm/internal/vlmkern"
	"github.com/vlm-go/vlm/llama"
	"github.com/vlm-go/vlm/mtmd"
)

// encoderOptions configure the -encoder benchmark.
type encoderOptions struct {
	preset   string
	types    []gguf.TensorType
	threads  int
	reps     int
	cloop    string // the pure-C loop's binary ("" skips it)
	prefill  bool   // also the preset's tiled picture: encode of every tile, prefill of the image prompt
	cacheDir string
}

// encoderFLOPs is one encoder pass of spec's projector over one tile:
// patch embedding, per layer Q/K/V/O projections, attention (Q·Kᵀ and
// P·V) and the MLP, and the projection after the pixel shuffle (2 FLOP per
// multiply-add; norms, GELU and softmax not counted).
func encoderFLOPs(p testmodel.ProjectorConfig) float64 {
	n := float64(p.ImageSize/p.PatchSize) * float64(p.ImageSize/p.PatchSize)
	d, ff := float64(p.NEmbd), float64(p.NFF)
	patch := 2 * n * 3 * float64(p.PatchSize*p.PatchSize) * d
	layer := 2*n*4*d*d + 2*2*n*n*d + 2*2*n*d*ff
	s := float64(max(p.ScaleFactor, 1))
	proj := 2 * (n / (s * s)) * (d * s * s) * float64(p.OutputEmbd)
	return patch + float64(p.NLayer)*layer + proj
}

// runEncoder measures one encoder pass per tile: vlm as built (its
// flash-attention kernel where the CPU has AVX-512), vlm with ggml's
// kernel, and the pure-C loop over llama.cpp (cloop), in one run, with the
// FLOP/s reached against the CPU's measured FMA peak; with prefill, also
// the preset's own tiling of a 512 px picture (every tile encoded, then the
// image prompt's prefill).
func runEncoder(o encoderOptions) error {
	ctx := context.Background()
	peak, lanes := vlmkern.FMAPeak(o.threads, 200_000_000)
	fmt.Printf("CPU kernels %s; FP32 FMA peak measured on %d threads: %.0f GFLOP/s (%d lanes)\n", vlm.CPUKernels(), o.threads, peak/1e9, lanes)
	spec, err := testmodel.Preset(o.preset)
	if err != nil {
		return err
	}
	flops := encoderFLOPs(spec.Projector)
	fmt.Printf("preset %s: %.1f GFLOP per tile, %d threads, best of %d\n", o.preset, flops/1e9, o.threads, o.reps)
	fmt.Printf("%-6s %12s %12s %12s %9s %9s %10s %8s\n", "type", "cloop ms", "ggml-FA ms", "vlm ms", "cloop/vlm", "ggml/vlm", "vlm GFLOP/s", "of peak")
	for _, typ := range o.types {
		cl := 0.0
		mp, pp, err := ensurePreset(ctx, o.preset, typ, true, o.cacheDir)
		if err != nil {
			return err
		}
		// Each repetition runs all three back to back, so that a slow spell
		// of a shared machine hits them alike.
		best, err := encodeTimes(ctx, mp, pp, o.threads, o.reps, func() error {
			if o.cloop == "" {
				return nil
			}
			ms, err := cloopEncode(o.cloop, mp, pp, o.threads, 1)
			if err == nil && (cl == 0 || ms < cl) {
				cl = ms
			}
			return err
		})
		if err != nil {
			return err
		}
		v, g := best[0], best[1]
		gf := flops / (v / 1e3) / 1e9
		fmt.Printf("%-6s %12.1f %12.1f %12.1f %9.2f %9.2f %10.0f %7.0f%%\n", typ, cl, g, v, cl/v, g/v, gf, 100*gf*1e9/peak)
	}
	if !o.prefill {
		return nil
	}
	for _, typ := range o.types {
		if err := tiledPrefill(ctx, o, typ); err != nil {
			return err
		}
	}
	return nil
}

// encodeTimes returns the best encode of one 512 px tile in ms, with vlm's
// kernels ([0]) and ggml's flash attention ([1]), alternating; each
// repetition ends with also.
func encodeTimes(ctx context.Context, mp, pp string, threads, reps int, also func() error) ([2]float64, error) {
	var best [2]float64
	m, err := llama.Load(ctx, mp, llama.LoadOptions{NoGPU: true})
	if err != nil {
		return best, err
	}
	defer m.Close()
	proj, err := mtmd.Load(ctx, pp, m, mtmd.Options{Threads: threads, NoGPU: true, Warmup: true})
	if err != nil {
		return best, err
	}
	defer proj.Close()
	img, err := mtmd.ImageFromGo(picture(512))
	if err != nil {
		return best, err
	}
	chunks, err := proj.Tokenize(ctx, proj.Marker(), []*mtmd.Image{img}, mtmd.TokenizeOptions{})
	if err != nil {
		return best, err
	}
	defer chunks.Close()
	idx := -1
	for i, ch := range chunks.All() {
		if ch.Type == mtmd.ChunkImage {
			idx = i
			break
		}
	}
	if idx < 0 {
		return best, fmt.Errorf("no image chunk")
	}
	was := vlmkern.SetGGMLFlashAttention(false)
	defer vlmkern.SetGGMLFlashAttention(was)
	for r := 0; r < reps; r++ {
		for k := range best {
			vlmkern.SetGGMLFlashAttention(k == 1)
			t0 := time.Now()
			if _, err := proj.Encode(ctx, chunks, idx); err != nil {
				return best, err
			}
			ms := float64(time.Since(t0).Microseconds()) / 1e3
			if best[k] == 0 || ms < best[k] {
				best[k] = ms
			}
		}
		if err := also(); err != nil {
			return best, err
		}
	}
	return best, nil
}

// cloopEncode runs the pure-C loop reps times and returns its best encode_ms.
func cloopEncode(bin, mp, pp string, threads, reps int) (float64, error) {
	best := 0.0
	for r := 0; r < reps; r++ {
		cmd := exec.Command(bin, "-m", mp, "-mmproj", pp, "-t", fmt.Sprint(threads), "-p", "16", "-n", "1", "-img", "512")
		cmd.Env = append(os.Environ(), "CLOOP_NOFREE=1")
		out, err := cmd.Output()
		if err != nil {
			return 0, fmt.Errorf("%s: %w", bin, err)
		}
		var res struct {
			EncodeMS float64 `json:"encode_ms"`
		}
		lines := strings.Split(strings.TrimSpace(string(out)), "\n")
		if err := json.Unmarshal([]byte(lines[0]), &res); err != nil || res.EncodeMS <= 0 {
			return 0, fmt.Errorf("%s: no encode_ms in %q", bin, out)
		}
		if best == 0 || res.EncodeMS < best {
			best = res.EncodeMS
		}
	}
	return best, nil
}

// tiledPrefill encodes the preset's tiling of a 512 px picture (every
// tile) with vlm's kernels and then measures the prefill of the image
// prompt's embeddings into a fresh context (best of o.reps).
func tiledPrefill(ctx context.Context, o encoderOptions, typ gguf.TensorType) error {
	mp, pp, err := ensurePreset(ctx, o.preset, typ, false, o.cacheDir)
	if err != nil {
		return err
	}
	m, err := llama.Load(ctx, mp, llama.LoadOptions{NoGPU: true})
	if err != nil {
		return err
	}
	defer m.Close()
	proj, err := mtmd.Load(ctx, pp, m, mtmd.Options{Threads: o.threads, NoGPU: true, Warmup: true})
	if err != nil {
		return err
	}
	defer proj.Close()
	img, err := mtmd.ImageFromGo(picture(512))
	if err != nil {
		return err
	}
	chunks, err := proj.Tokenize(ctx, proj.Marker(), []*mtmd.Image{img}, mtmd.TokenizeOptions{})
	if err != nil {
		return err
	}
	defer chunks.Close()
	x, err := m.NewContext(llama.ContextOptions{ContextSize: chunks.NPos() + 64, BatchSize: 512, UBatchSize: 512, Threads: o.threads})
	if err != nil {
		return err
	}
	defer x.Close()
	_, first, err := proj.Eval(ctx, x, chunks, mtmd.EvalOptions{})
	if err != nil {
		return err
	}
	bestPrefill := time.Duration(0)
	for r := 0; r < o.reps; r++ {
		if err := x.ClearMemory(); err != nil {
			return err
		}
		_, st, err := proj.Eval(ctx, x, chunks, mtmd.EvalOptions{})
		if err != nil {
			return err
		}
		if st.ImagesEncoded != 0 {
			return fmt.Errorf("second eval encoded %d chunks", st.ImagesEncoded)
		}
		d := st.DecodeTime
		if bestPrefill == 0 || d < bestPrefill {
			bestPrefill = d
		}
	}
	fmt.Printf("%s, 512 px picture as the preset tiles it: %d image chunks, %d positions; encode all %.1f s (%.0f ms per chunk); prefill of the image prompt %.0f ms (%.0f positions/s)\n",
		typ, first.ImagesEncoded, chunks.NPos(), float64(first.EncodeTime)/1e9, float64(first.EncodeTime)/1e6/float64(max(first.ImagesEncoded, 1)),
		float64(bestPrefill)/1e6, float64(chunks.NPos())/bestPrefill.Seconds())
	return nil
}
