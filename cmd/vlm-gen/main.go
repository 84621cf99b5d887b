// Command vlm-gen writes a generated test model pair — a text model and a
// vision projector (mmproj) GGUF with seeded random weights — and prints
// their paths, sizes and the numbers llama.cpp and mtmd will report for
// them.
//
//	vlm-gen                                   # tiny (idefics3), f16, into the user cache
//	vlm-gen -preset tiny -projector gemma3 -type q8_0 -out /tmp/m
//	vlm-gen -preset smolvlm-256m -type q8_0   # ~270 MB, for benchmarks
//	vlm-gen -list
//
// Without -out the files go to the user cache directory
// (os.UserCacheDir()/vlm/models) under content-addressed names and are
// written only when missing; with -out they are always (re)written there.
// The text the models generate is meaningless: the weights are random.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"time"

	"github.com/vlm-go/vlm/gguf"
	"github.com/vlm-go/vlm/internal/testmodel"
)

func main() {
	if err := run(context.Background(), os.Args[1:], os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "vlm-gen:", err)
		if errors.Is(err, errUsage) {
			os.Exit(2)
		}
		os.Exit(1)
	}
}

var errUsage = errors.New("usage")

func parseType(s string) (gguf.TensorType, error) {
	switch strings.ToLower(s) {
	case "f32":
		return gguf.TypeF32, nil
	case "f16":
		return gguf.TypeF16, nil
	case "q8_0", "q8":
		return gguf.TypeQ8_0, nil
	}
	return 0, fmt.Errorf("%w: -type %q: want f32, f16 or q8_0", errUsage, s)
}

// resolve returns the spec for the flags: -projector picks the tiny variant
// of "tiny" and must match any other preset's projector.
func resolve(preset, projector, typ string, seed uint64, seedSet bool) (testmodel.Spec, error) {
	name := preset
	if projector != "" && preset == testmodel.PresetTiny {
		name = "tiny-" + projector
	}
	spec, err := testmodel.Preset(name)
	if err != nil {
		return spec, fmt.Errorf("%w: %v", errUsage, err)
	}
	if projector != "" && string(spec.Projector.Type) != projector {
		return spec, fmt.Errorf("%w: preset %s has projector %s, not %s", errUsage, preset, spec.Projector.Type, projector)
	}
	if spec.WeightType, err = parseType(typ); err != nil {
		return spec, err
	}
	if seedSet {
		spec.Seed = seed
	}
	return spec, spec.Validate()
}

func run(ctx context.Context, args []string, out io.Writer) error {
	fs := flag.NewFlagSet("vlm-gen", flag.ContinueOnError)
	fs.SetOutput(out)
	preset := fs.String("preset", testmodel.PresetTiny, "preset: "+strings.Join(testmodel.Presets(), ", "))
	projector := fs.String("projector", "", "projector type for -preset tiny: mlp, idefics3 or gemma3 (default: the preset's)")
	typ := fs.String("type", "f16", "type of the 2-D weights: f32, f16 or q8_0")
	seed := fs.Uint64("seed", testmodel.DefaultSeed, "seed of the random weights")
	dir := fs.String("out", "", "directory to write into (default: the user cache, reusing existing files)")
	list := fs.Bool("list", false, "list the presets and exit")
	asJSON := fs.Bool("json", false, "print the paths and predicted numbers as JSON")
	image := fs.String("image", "64x64", "image size WxH whose embedding count to predict")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return fmt.Errorf("%w: %v", errUsage, err)
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("%w: unexpected arguments %q", errUsage, fs.Args())
	}
	if *list {
		for _, name := range testmodel.Presets() {
			s, err := testmodel.Preset(name)
			if err != nil {
				return err
			}
			fmt.Fprintf(out, "%-14s projector %-8s text %d wide, %d layers, vocab %d; vision %d wide, %d layers, image %d px\n",
				name, s.Projector.Type, s.Text.NEmbd, s.Text.NLayer, mustVocab(s), s.Projector.NEmbd, s.Projector.NLayer, s.Projector.ImageSize)
		}
		return nil
	}
	var imgW, imgH int
	if _, err := fmt.Sscanf(*image, "%dx%d", &imgW, &imgH); err != nil || imgW <= 0 || imgH <= 0 {
		return fmt.Errorf("%w: -image %q: want WxH, e.g. 64x64", errUsage, *image)
	}
	seedSet := false
	fs.Visit(func(f *flag.Flag) { seedSet = seedSet || f.Name == "seed" })
	spec, err := resolve(*preset, *projector, *typ, *seed, seedSet)
	if err != nil {
		return err
	}

	ctx, stop := signal.NotifyContext(ctx, os.Interrupt)
	defer stop()
	start := time.Now()
	var model, proj string
	if *dir != "" {
		if err := os.MkdirAll(*dir, 0o755); err != nil {
			return err
		}
		model, proj, err = testmodel.Write(*dir, spec)
	} else {
		var cache string
		if cache, err = testmodel.DefaultCacheDir(); err != nil {
			return err
		}
		model, proj, err = testmodel.Ensure(ctx, cache, spec)
	}
	if err != nil {
		return err
	}
	elapsed := time.Since(start)
	chunks, err := spec.ImageChunks(imgW, imgH)
	if err != nil {
		return err
	}
	if *asJSON {
		return printJSON(out, spec, model, proj, *image, chunks, elapsed)
	}

	for _, f := range []struct {
		label, path string
		params      uint64
	}{{"model", model, spec.TextParams()}, {"mmproj", proj, spec.ProjectorParams()}} {
		st, err := os.Stat(f.path)
		if err != nil {
			return err
		}
		fmt.Fprintf(out, "%-6s %s\n       %d bytes (%.1f MiB), %d parameters\n", f.label, f.path, st.Size(), float64(st.Size())/(1<<20), f.params)
	}
	fmt.Fprintf(out, "spec   %s, %s weights, seed %d, text n_embd %d, n_vocab %d\n", spec.Name, spec.WeightType, spec.Seed, spec.Text.NEmbd, mustVocab(spec))
	for _, sz := range [][2]int{{imgW, imgH}, {spec.Projector.ImageSize, spec.Projector.ImageSize}, {640, 480}} {
		chunks, err := spec.ImageChunks(sz[0], sz[1])
		if err != nil {
			return err
		}
		n, _ := spec.ImageTokens(sz[0], sz[1])
		fmt.Fprintf(out, "image  %d×%d → %d embeddings in %d chunk(s)\n", sz[0], sz[1], n, len(chunks))
	}
	fmt.Fprintf(out, "took   %v\n", elapsed.Round(time.Millisecond))
	return nil
}

// report is what -json prints.
type report struct {
	Spec            testmodel.Spec `json:"spec"`
	Model           string         `json:"model"`
	MMProj          string         `json:"mmproj"`
	ModelBytes      int64          `json:"model_bytes"`
	MMProjBytes     int64          `json:"mmproj_bytes"`
	NEmbd           int            `json:"n_embd"`
	NVocab          int            `json:"n_vocab"`
	TextParams      uint64         `json:"text_params"`
	ProjectorParams uint64         `json:"projector_params"`
	Image           string         `json:"image"`
	ImageChunks     []int          `json:"image_chunks"`
	Seconds         float64        `json:"seconds"`
}

func printJSON(out io.Writer, spec testmodel.Spec, model, proj, image string, chunks []int, elapsed time.Duration) error {
	r := report{Spec: spec, Model: model, MMProj: proj, NEmbd: spec.Text.NEmbd, NVocab: mustVocab(spec),
		TextParams: spec.TextParams(), ProjectorParams: spec.ProjectorParams(), Image: image, ImageChunks: chunks,
		Seconds: elapsed.Seconds()}
	for _, f := range []struct {
		path string
		size *int64
	}{{model, &r.ModelBytes}, {proj, &r.MMProjBytes}} {
		st, err := os.Stat(f.path)
		if err != nil {
			return err
		}
		*f.size = st.Size()
	}
	enc := json.NewEncoder(out)
	enc.SetIndent("", "  ")
	return enc.Encode(r)
}

func mustVocab(s testmodel.Spec) int {
	v, err := s.Vocabulary()
	if err != nil {
		return -1
	}
	return len(v.Tokens)
}
