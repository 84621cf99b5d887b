// Command chat asks a vision-language model about images and streams the
// answer: one question with -prompt, or an interactive multi-turn chat.
//
//	go run ./examples/chat -model SmolVLM-256M-Instruct-Q8_0.gguf \
//	    -mmproj mmproj-SmolVLM-256M-Instruct-Q8_0.gguf -image cat.jpg -prompt "What is in the picture?"
//
// With no -model it uses vlm's built-in demo model (random weights: the
// text is gibberish, the mechanics are real) and a generated demo image.
package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"image"
	"image/color"
	"io"
	"os"
	"os/signal"
	"strings"

	"github.com/schollz/progressbar/v3"

	"github.com/vlm-go/vlm/internal/testmodel"
	"github.com/vlm-go/vlm/pipeline"
	"github.com/vlm-go/vlm/sampler"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stdin, os.Stdout, os.Stderr); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			os.Exit(0)
		}
		fmt.Fprintln(os.Stderr, "chat:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	c, err := parseFlags(args, stderr)
	if err != nil {
		return err
	}
	demo := c.model == ""
	if demo {
		fmt.Fprintln(stderr, "chat: no -model given: using the built-in demo model. Its weights are RANDOM, so its answers are gibberish; pass -model and -mmproj for a real one.")
		if c.model, c.mmproj, err = testmodel.DemoPair(ctx); err != nil {
			return fmt.Errorf("writing the demo model: %w", err)
		}
	}
	opts := pipeline.Options{Threads: c.threads, GPULayers: c.ngl, ContextSize: c.ctxSize, Quantize8Bit: c.q8}
	var bar *progressbar.ProgressBar
	if !c.quiet && isTerminal(stderr) {
		bar = progressbar.NewOptions(100, progressbar.OptionSetWriter(stderr), progressbar.OptionSetDescription("loading"),
			progressbar.OptionClearOnFinish(), progressbar.OptionSetWidth(30))
		opts.Progress = func(p float32) bool { _ = bar.Set(int(p * 100)); return true }
	}
	p, err := pipeline.New(ctx, c.model, c.mmproj, opts)
	if bar != nil {
		_ = bar.Finish()
	}
	if err != nil {
		return err
	}
	defer p.Close()
	session, err := p.NewSession(pipeline.SessionOptions{System: c.system})
	if err != nil {
		return err
	}
	defer session.Close()
	gen := pipeline.GenerateOptions{MaxNewTokens: c.n, Sampler: sampler.Config{Temperature: float32(c.temp), Seed: uint32(c.seed)}}

	var images []pipeline.Image
	for _, path := range c.images {
		images = append(images, pipeline.ImageFile(path))
	}
	if demo && len(images) == 0 {
		images = append(images, pipeline.ImageOf(demoImage()))
		fmt.Fprintln(stderr, "chat: using a generated 64×64 demo image")
	}
	ask := func(text string, imgs []pipeline.Image) error {
		st := session.Stream(ctx, pipeline.Input{Text: text, Images: imgs}, gen)
		for tok, err := range st.Tokens() {
			if err != nil {
				fmt.Fprintln(stdout)
				return err
			}
			fmt.Fprint(stdout, tok.Text)
		}
		fmt.Fprintln(stdout)
		if !c.quiet {
			fmt.Fprintf(stderr, "stats: %s\n", st.Response().Stats)
		}
		return nil
	}
	if c.prompt != "" {
		return ask(c.prompt, images)
	}

	fmt.Fprintln(stderr, "chat: type a message; /image PATH attaches an image, /reset starts over, /quit leaves")
	in := bufio.NewScanner(stdin)
	in.Buffer(make([]byte, 1<<20), 1<<20)
	for {
		fmt.Fprint(stderr, "> ")
		if !in.Scan() {
			fmt.Fprintln(stderr)
			return in.Err()
		}
		line := strings.TrimSpace(in.Text())
		switch {
		case line == "":
			continue
		case line == "/quit" || line == "/exit":
			return nil
		case line == "/reset":
			images = nil
			if err := session.Reset(); err != nil {
				return err
			}
			fmt.Fprintln(stderr, "chat: conversation cleared")
			continue
		case strings.HasPrefix(line, "/image "):
			path := strings.TrimSpace(strings.TrimPrefix(line, "/image "))
			if _, err := os.Stat(path); err != nil {
				fmt.Fprintln(stderr, "chat:", err)
				continue
			}
			images = append(images, pipeline.ImageFile(path))
			fmt.Fprintf(stderr, "chat: %s will go with your next message\n", path)
			continue
		case strings.HasPrefix(line, "/"):
			fmt.Fprintf(stderr, "chat: unknown command %q (/image PATH, /reset, /quit)\n", line)
			continue
		}
		err := ask(line, images)
		images = nil
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			fmt.Fprintln(stderr, "chat:", err)
		}
	}
}

// isTerminal reports whether w is a terminal (the progress bar is drawn
// only there).
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}

// demoImage is a colourful 64×64 picture for the demo model.
func demoImage() image.Image {
	img := image.NewNRGBA(image.Rect(0, 0, 64, 64))
	for y := 0; y < 64; y++ {
		for x := 0; x < 64; x++ {
			img.SetNRGBA(x, y, color.NRGBA{uint8(x * 4), uint8(y * 4), uint8((x + y) * 2), 255})
		}
	}
	return img
}
