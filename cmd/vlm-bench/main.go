// Command vlm-bench measures vlm on synthetic models of real shapes and
// prints a table: weight memory, prefill and decode speed, image encode time
// for each weight type, and each type's ratio to the first one, all from
// one run (absolute speeds on shared machines are noisy; ratios within a
// run are what to compare).
//
//	go run ./cmd/vlm-bench -preset smolvlm-256m -types f16,q8_0
//
// With -streams it measures the batching engine: the aggregate decode speed
// of 1, 4, 8, 16 concurrent streams and the ratio to one, the time to
// first token of a new request while 8 streams decode, and of a second
// question about the same picture (see streams.go):
//
//	go run ./cmd/vlm-bench -streams 1,4,8,16 -types q8_0 -threads 2
//
// With -encoder it measures the image encoder: one 512 px tile with vlm's
// kernels, with ggml's flash-attention kernel, and through the pure-C loop
// over llama.cpp (see encoder.go), with the FLOP/s reached against the CPU's
// measured FMA peak; -prefill adds the preset's tiling of a picture and the
// prefill of its image prompt:
//
//	go run ./cmd/vlm-bench -encoder -types f16,q8_0 -threads 2 -cloop /tmp/cloop -prefill
//
// With -servers it starts each vlm-server binary in turn (e.g. one built
// before a change and one after) with -parallel 8 and measures the time to
// the first token about a new 512 px picture, and the ratios (server.go):
//
//	go run ./cmd/vlm-bench -servers /tmp/vlm-server-old,/tmp/vlm-server-new -types q8_0 -threads 2 -reps 1
//
// With -repeat it measures asking again about the same picture instead:
// time to first token of the first ask, of the same picture with another
// question, of the third turn of a session holding two pictures, and their
// ratios (see repeat.go):
//
//	go run ./cmd/vlm-bench -repeat -types q8_0 -threads 2
//
// With -isolation N it measures what pipeline.ChildProcess costs against
// the same pipeline in process (see isolation.go): one stream's decode
// speed, a text request's time to first token, the aggregate decode speed
// of N streams, and the parent's RSS:
//
//	go run ./cmd/vlm-bench -isolation 8 -types q8_0 -threads 2
//
// Models are written once into the cache dir (hundreds of MB for
// smolvlm-256m). Speed does not depend on weight values, so random weights
// measure what real ones would.
package main

import (
	"bufio"
	"context"
	"flag"
	"fmt"
	"image"
	"image/color"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"time"

	"github.com/vlm-go/vlm/gguf"
	"github.com/vlm-go/vlm/internal/testmodel"
	"github.com/vlm-go/vlm/isolate"
	"github.com/vlm-go/vlm/llama"
	"github.com/vlm-go/vlm/mtmd"
	"github.com/vlm-go/vlm/sampler"
)

type result struct {
	typ                  string
	fileMiB, rssMiB      float64
	prefillTPS, decodeTP float64
	encodeMS             float64
	imageTokens          int
}

func main() {
	isolate.Main() // -isolation runs the model in a re-executed child
	preset := flag.String("preset", testmodel.PresetSmolVLM256M, "model preset (see internal/testmodel)")
	types := flag.String("types", "f16,q8_0", "comma-separated weight types: f32, f16, q8_0")
	nPrompt := flag.Int("prompt", 512, "prompt tokens for the prefill measurement")
	nGen := flag.Int("gen", 128, "tokens for the decode measurement")
	reps := flag.Int("reps", 3, "repetitions (the best is reported)")
	threads := flag.Int("threads", runtime.NumCPU(), "CPU threads")
	ngl := flag.Int("ngl", 0, "layers on the GPU (-1: all)")
	gpuProj := flag.Bool("gpu-projector", false, "run the vision encoder on the GPU")
	cache := flag.String("cache", "", "where models are written (default: the user cache dir)")
	flash := flag.String("flash", "auto", "flash attention for the table's contexts: auto (llama.cpp decides), on or off")
	repeat := flag.Bool("repeat", false, "measure asking again about the same picture instead (first ask vs second ask, session turns; first -types entry)")
	asks := flag.Int("asks", 5, "with -repeat: second asks measured")
	oneTile := flag.Bool("one-tile", false, "with -repeat: one encoder tile per picture instead of the preset's tiling (quick)")
	noCache := flag.Bool("cache-off", true, "with -repeat: also measure a second ask with the image cache off")
	streams := flag.String("streams", "", "measure the batching engine instead: aggregate decode tok/s at these concurrent stream counts, e.g. 1,4,8,16, and time to first token under load (first -types entry)")
	loaded := flag.Int("loaded", 8, "with -streams: streams decoding while a new request's time to first token is measured")
	isolation := flag.Int("isolation", 0, "measure pipeline.ChildProcess against the same pipeline in process instead, with this many concurrent streams for the aggregate: decode tok/s, text TTFT, aggregate decode, the parent's RSS (first -types entry)")
	ttfts := flag.Int("ttfts", 10, "with -isolation: time-to-first-token samples per repetition and mode")
	encoder := flag.Bool("encoder", false, "measure the image encoder instead: one tile with vlm's kernels, with ggml's flash attention, and with the pure-C loop (-cloop), FLOP/s against the measured FMA peak")
	cloop := flag.String("cloop", "", "with -encoder: the pure-C loop's binary (../shared/tools/cloop/build.sh builds it)")
	prefill := flag.Bool("prefill", false, "with -encoder: also the preset's tiling of a 512 px picture: every tile encoded, then the image prompt's prefill")
	servers := flag.String("servers", "", "measure vlm-server binaries instead (comma-separated, back to back): time to the first token about a new 512 px picture with -parallel (first -types entry; the first binary is the reference)")
	parallel := flag.Int("parallel", 8, "with -servers: vlm-server -parallel")
	flag.Parse()
	switch *flash {
	case "auto":
	case "on":
		flashAttn = llama.FlashAttentionOn
	case "off":
		flashAttn = llama.FlashAttentionOff
	default:
		fmt.Fprintf(os.Stderr, "vlm-bench: -flash %q: want auto, on or off\n", *flash)
		os.Exit(2)
	}
	if *isolation > 0 {
		typ, err := parseType(strings.Split(*types, ",")[0])
		if err == nil && *cache == "" {
			*cache, err = testmodel.DefaultCacheDir()
		}
		if err == nil {
			err = runIsolation(isolationOptions{preset: *preset, typ: typ, threads: *threads, gen: *nGen, reps: *reps, streams: *isolation, ttfts: *ttfts, cacheDir: *cache})
		}
		if err != nil {
			fmt.Fprintln(os.Stderr, "vlm-bench:", err)
			os.Exit(1)
		}
		return
	}
	if *streams != "" {
		counts, err := sortedInts(*streams)
		var typ gguf.TensorType
		if err == nil {
			typ, err = parseType(strings.Split(*types, ",")[0])
		}
		if err == nil && *cache == "" {
			*cache, err = testmodel.DefaultCacheDir()
		}
		if err == nil {
			err = runStreams(streamsOptions{preset: *preset, typ: typ, threads: *threads, counts: counts, gen: *nGen, loaded: *loaded, cacheDir: *cache})
		}
		if err != nil {
			fmt.Fprintln(os.Stderr, "vlm-bench:", err)
			os.Exit(1)
		}
		return
	}
	if *servers != "" {
		typ, err := parseType(strings.Split(*types, ",")[0])
		if err == nil && *cache == "" {
			*cache, err = testmodel.DefaultCacheDir()
		}
		if err == nil {
			err = runServers(serverOptions{preset: *preset, typ: typ, threads: *threads, parallel: *parallel, bins: strings.Split(*servers, ","), reps: *reps, cacheDir: *cache})
		}
		if err != nil {
			fmt.Fprintln(os.Stderr, "vlm-bench:", err)
			os.Exit(1)
		}
		return
	}
	if *encoder {
		var typs []gguf.TensorType
		for _, ts := range strings.Split(*types, ",") {
			typ, err := parseType(ts)
			if err != nil {
				fmt.Fprintln(os.Stderr, "vlm-bench:", err)
				os.Exit(2)
			}
			typs = append(typs, typ)
		}
		err := error(nil)
		if *cache == "" {
			*cache, err = testmodel.DefaultCacheDir()
		}
		if err == nil {
			err = runEncoder(encoderOptions{preset: *preset, types: typs, threads: *threads, reps: *reps, cloop: *cloop, prefill: *prefill, cacheDir: *cache})
		}
		if err != nil {
			fmt.Fprintln(os.Stderr, "vlm-bench:", err)
			os.Exit(1)
		}
		return
	}
	if *repeat {
		typ, err := parseType(strings.Split(*types, ",")[0])
		if err == nil && *cache == "" {
			*cache, err = testmodel.DefaultCacheDir()
		}
		if err == nil {
			err = runRepeat(repeatOptions{preset: *preset, typ: typ, threads: *threads, asks: *asks,
				oneTile: *oneTile, noCache: *noCache, cacheDir: *cache})
		}
		if err != nil {
			fmt.Fprintln(os.Stderr, "vlm-bench:", err)
			os.Exit(1)
		}
		return
	}
	if err := run(*preset, strings.Split(*types, ","), *nPrompt, *nGen, *reps, *threads, *ngl, *gpuProj, *cache); err != nil {
		fmt.Fprintln(os.Stderr, "vlm-bench:", err)
		os.Exit(1)
	}
}

// flashAttn is the table's flash-attention setting (-flash).
var flashAttn = llama.FlashAttentionAuto

func parseType(s string) (gguf.TensorType, error) {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "f32":
		return gguf.TypeF32, nil
	case "f16":
		return gguf.TypeF16, nil
	case "q8_0", "q8":
		return gguf.TypeQ8_0, nil
	}
	return 0, fmt.Errorf("unknown weight type %q (f32, f16, q8_0)", s)
}

func run(preset string, types []string, nPrompt, nGen, reps, threads, ngl int, gpuProj bool, cache string) error {
	ctx := context.Background()
	if cache == "" {
		d, err := testmodel.DefaultCacheDir()
		if err != nil {
			return err
		}
		cache = d
	}
	var benches []*bench
	defer func() {
		for _, b := range benches {
			b.close()
		}
	}()
	for _, ts := range types {
		typ, err := parseType(ts)
		if err != nil {
			return err
		}
		spec, err := testmodel.Preset(preset)
		if err != nil {
			return err
		}
		spec.WeightType = typ
		spec.Projector.PreprocImageSize = 0 // one image_size tile per image: measures one encoder pass
		t0 := time.Now()
		mp, pp, err := testmodel.Ensure(ctx, cache, spec)
		if err != nil {
			return err
		}
		fmt.Fprintf(os.Stderr, "%s: model ready in %v (%s)\n", typ, time.Since(t0).Round(time.Millisecond), filepath.Dir(mp))
		b, err := setup(ctx, typ.String(), mp, pp, nPrompt, nGen, threads, ngl, gpuProj)
		if b != nil {
			benches = append(benches, b)
		}
		if err != nil {
			return err
		}
	}
	// Repetitions alternate between the types, so that a slow spell of a
	// shared machine hits all of them alike.
	for rep := 0; rep < reps; rep++ {
		for _, b := range benches {
			if err := b.once(ctx); err != nil {
				return err
			}
		}
	}
	var results []result
	for _, b := range benches {
		results = append(results, b.r)
	}
	fmt.Printf("preset %s, %d threads, ngl %d, best of %d\n", preset, threads, ngl, reps)
	fmt.Printf("%-6s %10s %10s %14s %13s %12s %8s\n", "type", "file MiB", "RSS MiB", "prefill tok/s", "decode tok/s", "encode ms", "img tok")
	for _, r := range results {
		fmt.Printf("%-6s %10.1f %10.1f %14.1f %13.1f %12.1f %8d\n", r.typ, r.fileMiB, r.rssMiB, r.prefillTPS, r.decodeTP, r.encodeMS, r.imageTokens)
	}
	if len(results) > 1 {
		b := results[0]
		for _, r := range results[1:] {
			fmt.Printf("%s / %s: file %.2f×, RSS %.2f×, prefill %.2f×, decode %.2f×, encode time %.2f×\n",
				r.typ, b.typ, r.fileMiB/b.fileMiB, r.rssMiB/b.rssMiB, r.prefillTPS/b.prefillTPS, r.decodeTP/b.decodeTP, r.encodeMS/b.encodeMS)
		}
	}
	return nil
}

// bench holds one weight type's loaded model, projector and inputs.
type bench struct {
	r        result
	m        *llama.Model
	proj     *mtmd.Projector
	x        *llama.Context
	b, one   *llama.Batch
	chunks   *mtmd.Chunks
	imgChunk int
	prompt   []llama.Token
	nPrompt  int
	nGen     int
}

func (b *bench) close() {
	b.chunks.Close()
	b.one.Close()
	b.b.Close()
	b.x.Close()
	b.proj.Close()
	b.m.Close()
}

func setup(ctx context.Context, typ, mp, pp string, nPrompt, nGen, threads, ngl int, gpuProj bool) (*bench, error) {
	bn := &bench{r: result{typ: typ}, nPrompt: nPrompt, nGen: nGen, imgChunk: -1}
	st, err := os.Stat(mp)
	if err != nil {
		return nil, err
	}
	bn.r.fileMiB = float64(st.Size()) / (1 << 20)
	rss0 := rssMiB()
	// No mmap, so the weights' memory shows in RSS.
	if bn.m, err = llama.Load(ctx, mp, llama.LoadOptions{GPULayers: ngl, NoGPU: ngl == 0, NoMmap: true}); err != nil {
		return nil, err
	}
	bn.r.rssMiB = rssMiB() - rss0
	if bn.proj, err = mtmd.Load(ctx, pp, bn.m, mtmd.Options{Threads: threads, NoGPU: !gpuProj, Warmup: true}); err != nil {
		return bn, err
	}
	if bn.x, err = bn.m.NewContext(llama.ContextOptions{ContextSize: nPrompt + nGen + 64, BatchSize: nPrompt, UBatchSize: nPrompt, Threads: threads, FlashAttn: flashAttn}); err != nil {
		return bn, err
	}
	info, _ := bn.m.Info()
	rng := rand.New(rand.NewPCG(1, 2))
	bn.prompt = make([]llama.Token, nPrompt)
	for i := range bn.prompt {
		bn.prompt[i] = llama.Token(300 + rng.IntN(info.NVocab-300))
	}
	if bn.b, err = bn.x.NewBatch(nPrompt); err != nil {
		return bn, err
	}
	if bn.one, err = bn.x.NewBatch(1); err != nil {
		return bn, err
	}
	img, err := mtmd.ImageFromGo(picture(512))
	if err != nil {
		return bn, err
	}
	if bn.chunks, err = bn.proj.Tokenize(ctx, bn.proj.Marker(), []*mtmd.Image{img}, mtmd.TokenizeOptions{}); err != nil {
		return bn, err
	}
	for i, ch := range bn.chunks.All() {
		if ch.Type == mtmd.ChunkImage {
			bn.imgChunk = i
			bn.r.imageTokens = ch.NTokens
			break
		}
	}
	return bn, nil
}

// once measures prefill, decode and one image encode, keeping the best.
func (bn *bench) once(ctx context.Context) error {
	r := &bn.r
	x := bn.x
	if err := x.ClearMemory(); err != nil {
		return err
	}
	bn.b.Clear()
	if err := bn.b.AddSequence(bn.prompt, 0, 0, true); err != nil {
		return err
	}
	t0 := time.Now()
	if err := x.Decode(ctx, bn.b); err != nil {
		return err
	}
	r.prefillTPS = max(r.prefillTPS, float64(bn.nPrompt)/time.Since(t0).Seconds())

	// Decode through llama.Generate, the user's path: greedy, EOG banned
	// so that every run makes nGen tokens.
	smp, err := sampler.New(bn.m, sampler.Config{LogitBias: eogBan(bn.m)})
	if err != nil {
		return err
	}
	defer smp.Close()
	t0 = time.Now()
	n := 0
	gen := llama.Generate(ctx, x, smp, llama.GenerateOptions{Pos: int32(bn.nPrompt), MaxTokens: bn.nGen})
	for _, err := range gen.Tokens() {
		if err != nil {
			return err
		}
		n++
	}
	if n != bn.nGen {
		return fmt.Errorf("generated %d tokens, want %d", n, bn.nGen)
	}
	r.decodeTP = max(r.decodeTP, float64(bn.nGen)/time.Since(t0).Seconds())

	t0 = time.Now()
	if _, err := bn.proj.Encode(ctx, bn.chunks, bn.imgChunk); err != nil {
		return err
	}
	ms := float64(time.Since(t0).Microseconds()) / 1000
	if r.encodeMS == 0 || ms < r.encodeMS {
		r.encodeMS = ms
	}
	return nil
}

// rssMiB reads the resident set size (Linux; 0 elsewhere).
func rssMiB() float64 {
	f, err := os.Open("/proc/self/status")
	if err != nil {
		return 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), "VmRSS:"); ok {
			kb, _ := strconv.Atoi(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(rest), "kB")))
			return float64(kb) / 1024
		}
	}
	return 0
}

func picture(n int) image.Image { return pictureSeeded(n, 0) }

// pictureSeeded is an n×n picture; shade tells pictures apart.
func pictureSeeded(n int, shade uint8) image.Image {
	img := image.NewNRGBA(image.Rect(0, 0, n, n))
	for y := 0; y < n; y++ {
		for x := 0; x < n; x++ {
			img.SetNRGBA(x, y, color.NRGBA{uint8(x), uint8(y), uint8(x^y) + shade, 255})
		}
	}
	return img
}
