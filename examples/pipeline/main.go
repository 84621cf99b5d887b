// Command pipeline walks through the Hugging Face image-text-to-text guide
// in Go: one call with an image and text, a chat with several images,
// streaming, return_full_text, a batch, and 8-bit (Q8_0) weights.
//
//	go run ./examples/pipeline -model model.gguf -mmproj mmproj.gguf -image a.jpg -image b.jpg
//
// Without -model it uses vlm's built-in demo model (random weights) and
// generated pictures.
package main

import (
	"context"
	"flag"
	"fmt"
	"image"
	"image/color"
	"os"

	"github.com/vlm-go/vlm/demo"
	"github.com/vlm-go/vlm/pipeline"
	"github.com/vlm-go/vlm/template"
)

func main() {
	if err := run(context.Background(), os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "pipeline:", err)
		os.Exit(1)
	}
}

type images []string

func (l *images) String() string     { return fmt.Sprint(*l) }
func (l *images) Set(v string) error { *l = append(*l, v); return nil }

func run(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("pipeline", flag.ContinueOnError)
	model := fs.String("model", "", "text model GGUF (default: the demo model)")
	mmproj := fs.String("mmproj", "", "vision projector GGUF")
	n := fs.Int("n", 32, "most tokens per answer")
	var files images
	fs.Var(&files, "image", "image file (repeatable; two are used)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *model == "" {
		fmt.Fprintln(os.Stderr, "(demo model: random weights, gibberish answers)")
		var err error
		if *model, *mmproj, err = demo.Pair(ctx); err != nil {
			return err
		}
	}
	imgs := []pipeline.Image{pipeline.ImageOf(picture(0)), pipeline.ImageOf(picture(120))}
	for i, f := range files {
		if i < len(imgs) {
			imgs[i] = pipeline.ImageFile(f)
		}
	}
	gen := pipeline.GenerateOptions{MaxTokens: *n}

	// pipe = pipeline("image-text-to-text", model=...)
	pipe, err := pipeline.New(ctx, *model, *mmproj, pipeline.Options{})
	if err != nil {
		return err
	}
	defer pipe.Close()

	// pipe(images=image, text="What is in this image?")
	out, err := pipe.Run(ctx, pipeline.Input{Images: imgs[:1], Text: "What is in this image?"}, gen)
	if err != nil {
		return err
	}
	fmt.Printf("1. one image: %q\n   %s\n", out.Text, out.Stats)

	// A chat with two images, as the guide's messages list.
	messages := []template.Message{
		template.User(template.Image(), template.Image(), template.Text("What is the difference between these two images?")),
	}
	out, err = pipe.Run(ctx, pipeline.Input{Messages: messages, Images: imgs}, gen)
	if err != nil {
		return err
	}
	fmt.Printf("2. chat, two images: %q\n", out.Text)

	// return_full_text=True
	out, err = pipe.Run(ctx, pipeline.Input{Messages: messages, Images: imgs}, pipeline.GenerateOptions{MaxTokens: *n, ReturnFullText: true})
	if err != nil {
		return err
	}
	fmt.Printf("3. full text: %q\n", out.Text)

	// Streaming (TextStreamer / TextIteratorStreamer).
	fmt.Print("4. streaming: ")
	st := pipe.Stream(ctx, pipeline.Input{Images: imgs[1:], Text: "Describe this image."}, gen)
	for tok, err := range st.Tokens() {
		if err != nil {
			return err
		}
		fmt.Print(tok.Text)
	}
	fmt.Printf("\n   %s\n", st.Response().Stats)

	// A batch of inputs.
	batch, err := pipe.RunBatch(ctx, []pipeline.Input{
		{Images: imgs[:1], Text: "Caption:"}, {Images: imgs[1:], Text: "Caption:"},
	}, gen)
	if err != nil {
		return err
	}
	for i, r := range batch {
		fmt.Printf("5. batch %d: %q\n", i, r.Text)
	}

	// Fit the model in less memory: 8-bit (Q8_0) weights, converted once and cached.
	pipe8, err := pipeline.New(ctx, *model, *mmproj, pipeline.Options{QuantizeQ8_0: true})
	if err != nil {
		return err
	}
	defer pipe8.Close()
	out, err = pipe8.Run(ctx, pipeline.Input{Images: imgs[:1], Text: "What is in this image?"}, gen)
	if err != nil {
		return err
	}
	info, _ := pipe8.Model().Info()
	fmt.Printf("6. Q8_0 (%s, %.1f MiB of weights): %q\n", info.Description, float64(info.Size)/(1<<20), out.Text)
	return nil
}

// picture is a generated 64×64 test picture.
func picture(shade uint8) image.Image {
	img := image.NewNRGBA(image.Rect(0, 0, 64, 64))
	for y := 0; y < 64; y++ {
		for x := 0; x < 64; x++ {
			img.SetNRGBA(x, y, color.NRGBA{uint8(x * 4), shade, uint8(y * 4), 255})
		}
	}
	return img
}
