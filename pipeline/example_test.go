package pipeline_test

import (
	"context"
	"fmt"
	"image"
	"os"
	"path/filepath"

	"github.com/vlm-go/vlm/internal/testmodel"
	"github.com/vlm-go/vlm/pipeline"
)

// demoPair writes the small demo model (random weights) for the examples,
// once, into a shared temporary folder.
func demoPair() (model, projector string) {
	dir := filepath.Join(os.TempDir(), "vlm-examples")
	model, projector, err := testmodel.Ensure(context.Background(), dir, testmodel.DemoSpec())
	if err != nil {
		panic(err)
	}
	return model, projector
}

func Example() {
	ctx := context.Background()
	modelPath, projectorPath := demoPair() // your model.gguf and mmproj.gguf

	p, err := pipeline.New(ctx, modelPath, projectorPath, pipeline.Options{Threads: 2})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer p.Close()
	resp, err := p.Run(ctx, pipeline.Input{
		Text:   "What is in this picture?",
		Images: []pipeline.Image{pipeline.ImageOf(image.NewGray(image.Rect(0, 0, 32, 32)))},
	}, pipeline.GenerateOptions{MaxTokens: 8})
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println("generated:", resp.Stats.GeneratedTokens <= 8, "image tokens:", resp.Stats.ImageTokens)
	// Output: generated: true image tokens: 20
}

func ExamplePipeline_Stream() {
	ctx := context.Background()
	modelPath, projectorPath := demoPair()
	p, err := pipeline.New(ctx, modelPath, projectorPath, pipeline.Options{Threads: 2})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer p.Close()
	st := p.Stream(ctx, pipeline.Input{Text: "Tell me a story."}, pipeline.GenerateOptions{MaxTokens: 5})
	n := 0
	for tok, err := range st.Tokens() {
		if err != nil {
			fmt.Println(err)
			return
		}
		_ = tok.Text // print it as it comes
		n++
	}
	fmt.Println(st.Response().StopReason, n, st.Response().Stats.GeneratedTokens)
	// Output: max_tokens 5 5
}

func ExampleSession() {
	ctx := context.Background()
	modelPath, projectorPath := demoPair()
	p, err := pipeline.New(ctx, modelPath, projectorPath, pipeline.Options{Threads: 2})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer p.Close()
	s, err := p.NewSession(pipeline.SessionOptions{System: "You are a helpful assistant."})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer s.Close()
	first, _ := s.Send(ctx, pipeline.Input{Text: "Hello!"}, pipeline.GenerateOptions{MaxTokens: 4})
	second, _ := s.Send(ctx, pipeline.Input{Text: "And then?"}, pipeline.GenerateOptions{MaxTokens: 4})
	fmt.Println("first turn cached:", first.Stats.CachedTokens, "second turn reuses the first:", second.Stats.CachedTokens >= first.Stats.PromptTokens-1)
	// Output: first turn cached: 0 second turn reuses the first: true
}
