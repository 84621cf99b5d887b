package engine_test

import (
	"context"
	"fmt"
	"log"

	"github.com/vlm-go/vlm/engine"
	"github.com/vlm-go/vlm/llama"
	"github.com/vlm-go/vlm/mtmd"
)

// An engine answering requests from many goroutines in one context.
func Example() {
	ctx := context.Background()
	model, err := llama.Load(ctx, "model.gguf", llama.LoadOptions{})
	if err != nil {
		log.Fatal(err)
	}
	defer model.Close()
	proj, err := mtmd.Load(ctx, "mmproj.gguf", model, mtmd.Options{})
	if err != nil {
		log.Fatal(err)
	}
	defer proj.Close()
	e, err := engine.New(model, proj, engine.Options{Sequences: 8, SequenceLength: 4096})
	if err != nil {
		log.Fatal(err)
	}
	defer e.Close()
	cache := mtmd.NewImageCache(0)

	img, err := mtmd.LoadImage("cat.jpg", mtmd.Limits{})
	if err != nil {
		log.Fatal(err)
	}
	// Each request (this would run on its own goroutine).
	chunks, err := proj.Tokenize(ctx, "<|im_start|>user\n"+proj.Marker()+"What is this?<|im_end|>\n<|im_start|>assistant\n",
		[]*mtmd.Image{img}, mtmd.TokenizeOptions{AddSpecial: true, ParseSpecial: true, Cache: cache})
	if err != nil {
		log.Fatal(err)
	}
	s, err := e.Submit(ctx, engine.Request{Chunks: chunks, MaxTokens: 100})
	if err != nil {
		log.Fatal(err) // engine.ErrOverloaded: answer 429
	}
	for tok, err := range s.Tokens() {
		if err != nil {
			log.Fatal(err)
		}
		fmt.Print(tok.Text)
	}
	fmt.Println(s.Result().Reason)
}
