package main

import (
	"flag"
	"fmt"
	"io"
	"math"
	"strings"
)

// config holds the command-line flags.
type config struct {
	model, mmproj string
	images        []string
	prompt        string
	n             int
	temp          float64
	seed          uint
	threads       int
	ngl           int
	ctxSize       int
	system        string
	quiet         bool
	q8            bool
	ignoreEOS     bool
}

// imageList is a repeatable -image flag.
type imageList []string

func (l *imageList) String() string     { return strings.Join(*l, ",") }
func (l *imageList) Set(v string) error { *l = append(*l, v); return nil }

func parseFlags(args []string, stderr io.Writer) (config, error) {
	var c config
	fs := flag.NewFlagSet("chat", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&c.model, "model", "", "text model GGUF `file` (default: the built-in demo model, random weights)")
	fs.StringVar(&c.mmproj, "mmproj", "", "vision projector GGUF `file` for -model")
	fs.Var((*imageList)(&c.images), "image", "image `file` for the prompt (repeatable)")
	fs.StringVar(&c.prompt, "prompt", "", "ask this and exit; without it, chat interactively (Ctrl-C stops an answer, Ctrl-C at the prompt quits)")
	fs.IntVar(&c.n, "n", 128, "most tokens per answer")
	fs.Float64Var(&c.temp, "temp", 0, "sampling temperature (0: greedy)")
	fs.UintVar(&c.seed, "seed", 0, "sampling seed (0: random)")
	fs.IntVar(&c.threads, "threads", 0, "CPU threads (0: the pipeline's default)")
	fs.IntVar(&c.ngl, "ngl", -1, "layers on the GPU when one is loaded (-1: all, 0: none — CPU only)")
	fs.IntVar(&c.ctxSize, "ctx", 4096, "context length in tokens (at least 256)")
	fs.StringVar(&c.system, "system", "", "system message")
	fs.BoolVar(&c.quiet, "quiet", false, "no progress bar and no stats")
	fs.BoolVar(&c.q8, "q8", false, "convert the model to 8-bit (Q8_0) once and use that")
	fs.BoolVar(&c.ignoreEOS, "ignore-eos", false, "keep generating past end-of-generation tokens, up to -n (for measurements)")
	fs.Usage = func() {
		fmt.Fprintf(stderr, "Usage: chat [flags]\n\nAsk a vision-language model about images. Interactive commands:\n"+
			"  /image PATH   attach an image to the next message\n  /reset        start over\n  /quit         leave\n\nFlags:\n")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return c, err
	}
	if fs.NArg() > 0 {
		return c, fmt.Errorf("unexpected arguments %q (use -prompt)", fs.Args())
	}
	if (c.model == "") != (c.mmproj == "") {
		return c, fmt.Errorf("-model and -mmproj go together")
	}
	switch {
	case c.n <= 0:
		return c, fmt.Errorf("-n %d: must be > 0", c.n)
	case math.IsNaN(c.temp) || math.IsInf(c.temp, 0) || c.temp < 0:
		return c, fmt.Errorf("-temp %v: must be a number ≥ 0", c.temp)
	case c.threads < 0:
		return c, fmt.Errorf("-threads %d: must be ≥ 0", c.threads)
	case c.ngl < -1:
		return c, fmt.Errorf("-ngl %d: must be -1 (all layers), 0 (CPU only) or a layer count", c.ngl)
	case c.ctxSize < minContext:
		return c, fmt.Errorf("-ctx %d: must be at least %d tokens", c.ctxSize, minContext)
	case c.seed > 1<<32-1:
		return c, fmt.Errorf("-seed %d: must be < 2^32", c.seed)
	}
	return c, nil
}

// minContext is the smallest context llama.cpp makes (it pads n_ctx to 256).
const minContext = 256
