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
	"io"
	"math"
	"os"
	"os/signal"
	"strings"
	"sync/atomic"
	"time"

	"github.com/schollz/progressbar/v3"

	"github.com/vlm-go/vlm"
	"github.com/vlm-go/vlm/demo"
	"github.com/vlm-go/vlm/llama"
	"github.com/vlm-go/vlm/pipeline"
	"github.com/vlm-go/vlm/sampler"
)

// errInterrupted ends the program with exit status 130, the status a shell
// gives a program stopped by Ctrl-C.
var errInterrupted = errors.New("interrupted")

func main() {
	sigs := make(chan os.Signal, 4)
	signal.Notify(sigs, os.Interrupt)
	os.Exit(exitCode(run(context.Background(), os.Args[1:], os.Stdin, os.Stdout, os.Stderr, sigs), os.Stderr))
}

// exitCode prints err and returns the exit status: 0 for a normal end, 130
// for an interrupt, 1 for an error.
func exitCode(err error, stderr io.Writer) int {
	switch {
	case err == nil, errors.Is(err, flag.ErrHelp):
		return 0
	case errors.Is(err, errInterrupted):
		return 130
	}
	fmt.Fprintln(stderr, "chat:", err)
	return 1
}

// interruptible returns a context that the next interrupt cancels, and a
// function that stops watching and reports whether an interrupt came.
func interruptible(ctx context.Context, interrupts <-chan os.Signal) (context.Context, func() bool) {
	ctx, cancel := context.WithCancel(ctx)
	var hit atomic.Bool
	done, stopped := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(stopped)
		select {
		case <-interrupts:
			hit.Store(true)
			cancel()
		case <-done:
		}
	}()
	return ctx, func() bool {
		close(done)
		<-stopped
		cancel()
		return hit.Load()
	}
}

// run is the program; interrupts delivers Ctrl-C (os.Interrupt). During an
// answer an interrupt stops that answer (back to the prompt when
// interactive); while loading, at the prompt, or in a one-shot answer it
// ends the program with errInterrupted.
func run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer, interrupts <-chan os.Signal) error {
	c, err := parseFlags(args, stderr)
	if err != nil {
		return err
	}
	useDemo := c.model == ""
	loadCtx, loadDone := interruptible(ctx, interrupts)
	p, err := load(loadCtx, &c, stderr)
	if loadDone() {
		if p != nil {
			p.Close()
		}
		fmt.Fprintln(stderr)
		return errInterrupted
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
	gen := pipeline.GenerateOptions{MaxTokens: c.n, Sampler: sampler.Config{Temperature: float32(c.temp), Seed: uint32(c.seed)}}
	if c.ignoreEOS {
		gen.Sampler.LogitBias = map[llama.Token]float32{}
		for _, t := range p.Model().Vocab().EOGTokens() {
			gen.Sampler.LogitBias[t] = float32(math.Inf(-1))
		}
	}
	terminal := !c.quiet && isTerminal(stderr)

	var images []pipeline.Image
	var names []string // what each image is, for messages
	for _, path := range c.images {
		images = append(images, pipeline.ImageFile(path))
		names = append(names, path)
	}
	if useDemo && len(images) == 0 {
		images = append(images, pipeline.ImageOf(demo.Picture()))
		names = append(names, "the demo image")
		fmt.Fprintln(stderr, "chat: using a generated 64×64 demo image (image 1)")
	}
	// ask streams one answer; interrupted reports a Ctrl-C that stopped it.
	ask := func(text string, imgs []pipeline.Image) (interrupted bool, err error) {
		actx, askDone := interruptible(ctx, interrupts)
		opts := gen
		var bar *progressbar.ProgressBar
		if terminal {
			opts.ImageProgress = func(done, total int) {
				if bar == nil {
					bar = progressbar.NewOptions(total, progressbar.OptionSetWriter(stderr),
						progressbar.OptionSetDescription("encoding images"), progressbar.OptionClearOnFinish(),
						progressbar.OptionSetWidth(30), progressbar.OptionShowCount())
				}
				_ = bar.Set(done)
			}
		}
		st := session.Stream(actx, pipeline.Input{Text: text, Images: imgs}, opts)
		for tok, terr := range st.Tokens() {
			if terr != nil {
				err = terr
				break
			}
			fmt.Fprint(stdout, tok.Text)
		}
		if bar != nil {
			_ = bar.Finish()
		}
		fmt.Fprintln(stdout)
		if askDone() {
			return true, nil
		}
		resp := st.Response()
		if err != nil {
			if errors.Is(err, llama.ErrPromptTooLong) || errors.Is(err, llama.ErrContextFull) {
				return false, fmt.Errorf("%w\nthe conversation no longer fits in the context (-ctx %d): /reset starts over, or restart with a larger -ctx", err, c.ctxSize)
			}
			return false, err
		}
		if resp.StopReason == llama.StopCacheFull {
			fmt.Fprintf(stderr, "chat: the answer stopped because the context is full (-ctx %d tokens): /reset starts over, or restart with a larger -ctx\n", c.ctxSize)
		}
		if !c.quiet {
			fmt.Fprintf(stderr, "stats: %s\n", resp.Stats)
		}
		return false, nil
	}
	if c.prompt != "" {
		interrupted, err := ask(c.prompt, images)
		if interrupted {
			return errInterrupted
		}
		return err
	}
	if len(names) > 0 {
		fmt.Fprintf(stderr, "chat: %s will go with your first message\n", describe(names))
	}

	fmt.Fprintln(stderr, "chat: type a message; /image PATH attaches an image, /reset starts over, /quit leaves; Ctrl-C stops an answer, Ctrl-C at the prompt quits")
	lines := make(chan string)
	readErr := make(chan error, 1)
	go func() {
		in := bufio.NewScanner(stdin)
		in.Buffer(make([]byte, 1<<20), 1<<20)
		for in.Scan() {
			lines <- in.Text()
		}
		readErr <- in.Err()
		close(lines)
	}()
	for {
		fmt.Fprint(stderr, "> ")
		var line string
		select {
		case l, ok := <-lines:
			if !ok {
				fmt.Fprintln(stderr)
				return <-readErr
			}
			line = strings.TrimSpace(l)
		case <-interrupts:
			fmt.Fprintln(stderr)
			return errInterrupted
		}
		switch {
		case line == "":
			continue
		case line == "/quit" || line == "/exit":
			return nil
		case line == "/reset":
			images, names = nil, nil
			if err := session.Reset(); err != nil {
				return err
			}
			fmt.Fprintln(stderr, "chat: conversation cleared")
			continue
		case line == "/image" || strings.HasPrefix(line, "/image "):
			path := strings.TrimSpace(strings.TrimPrefix(line, "/image"))
			if path == "" {
				fmt.Fprintln(stderr, "chat: usage: /image PATH")
				continue
			}
			if _, err := os.Stat(path); err != nil {
				fmt.Fprintln(stderr, "chat:", err)
				continue
			}
			images = append(images, pipeline.ImageFile(path))
			names = append(names, path)
			fmt.Fprintf(stderr, "chat: %s (image %d) will go with your next message\n", path, len(images))
			continue
		case strings.HasPrefix(line, "/"):
			fmt.Fprintf(stderr, "chat: unknown command %q (/image PATH, /reset, /quit)\n", line)
			continue
		}
		interrupted, err := ask(line, images)
		images, names = nil, nil
		switch {
		case interrupted:
			fmt.Fprintln(stderr, "chat: answer stopped (Ctrl-C at the prompt quits)")
		case err != nil:
			fmt.Fprintln(stderr, "chat:", err)
		}
	}
}

// describe lists image names for a message: "a.png (image 1) and b.png (image 2)".
func describe(names []string) string {
	parts := make([]string, len(names))
	for i, n := range names {
		parts[i] = fmt.Sprintf("%s (image %d)", n, i+1)
	}
	return strings.Join(parts, " and ")
}

// load writes the demo pair when no model is given, makes the 8-bit copy
// for -q8, and loads the pipeline with a progress bar on a terminal.
func load(ctx context.Context, c *config, stderr io.Writer) (*pipeline.Pipeline, error) {
	var err error
	if c.model == "" {
		fmt.Fprintln(stderr, "chat: no -model given: using the built-in demo model. Its weights are RANDOM, so its answers are gibberish; pass -model and -mmproj for a real one.")
		if c.model, c.mmproj, err = demo.Pair(ctx); err != nil {
			return nil, fmt.Errorf("writing the demo model: %w", err)
		}
	}
	modelPath := c.model
	if c.q8 {
		fmt.Fprintf(stderr, "chat: -q8: converting %s to 8-bit (Q8_0) once, into the user cache dir (about a minute per GB of weights the first time; later runs reuse it)\n", c.model)
		t0 := time.Now()
		if modelPath, err = pipeline.QuantizedModel(ctx, c.model, "", c.threads); err != nil {
			return nil, err
		}
		fmt.Fprintf(stderr, "chat: -q8: using %s (%v)\n", modelPath, time.Since(t0).Round(time.Millisecond))
	}
	opts := pipeline.Options{Threads: c.threads, SequenceLength: c.ctxSize, NoGPU: c.ngl == 0}
	if c.ngl > 0 {
		opts.GPULayers = c.ngl
	}
	var bar *progressbar.ProgressBar
	if !c.quiet && isTerminal(stderr) {
		bar = progressbar.NewOptions(100, progressbar.OptionSetWriter(stderr), progressbar.OptionSetDescription("loading"),
			progressbar.OptionClearOnFinish(), progressbar.OptionSetWidth(30))
		opts.Progress = func(p float32) bool { _ = bar.Set(int(p * 100)); return true }
	}
	p, err := pipeline.New(ctx, modelPath, c.mmproj, opts)
	if bar != nil {
		_ = bar.Finish()
	}
	if err != nil && errors.Is(err, vlm.ErrLoad) && strings.Contains(err.Error(), "llama_init_from_model") {
		if need := kvCacheBytes(modelPath, c.ctxSize); need > 0 {
			return nil, fmt.Errorf("not enough memory for a context of %d tokens (its KV cache needs about %.1f GiB): lower -ctx (%w)",
				c.ctxSize, float64(need)/(1<<30), err)
		}
	}
	return p, err
}

// kvCacheBytes estimates the F16 KV cache of a context of n tokens for the
// model file at path (0 when the file does not say).
func kvCacheBytes(path string, n int) int64 {
	f, err := llama.CheckFile(path)
	if err != nil {
		return 0
	}
	arch := f.Architecture()
	num := func(key string) int64 {
		kv, ok := f.Get(arch + "." + key)
		if !ok {
			return 0
		}
		switch v := kv.Value.(type) {
		case uint32:
			return int64(v)
		case int32:
			return int64(v)
		case uint64:
			return int64(v)
		}
		return 0
	}
	layers, embd, heads, kvHeads := num("block_count"), num("embedding_length"), num("attention.head_count"), num("attention.head_count_kv")
	if kvHeads == 0 {
		kvHeads = heads
	}
	if layers == 0 || embd == 0 || heads == 0 {
		return 0
	}
	return 2 * 2 * layers * int64(n) * kvHeads * (embd / heads)
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
