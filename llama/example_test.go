package llama_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"

	"github.com/vlm-go/vlm/internal/testmodel"
	"github.com/vlm-go/vlm/llama"
	"github.com/vlm-go/vlm/sampler"
)

func ExampleGenerate() {
	ctx := context.Background()
	dir := filepath.Join(os.TempDir(), "vlm-examples")
	modelPath, _, err := testmodel.Ensure(ctx, dir, testmodel.DemoSpec()) // your model.gguf
	if err != nil {
		fmt.Println(err)
		return
	}

	m, err := llama.Load(ctx, modelPath, llama.LoadOptions{})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer m.Close()
	x, err := m.NewContext(llama.ContextOptions{ContextSize: 512, Threads: 2})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer x.Close()

	// Evaluate the prompt, asking for the logits of its last token.
	prompt, _ := m.Vocab().Tokenize("Once upon a time", true, false)
	b, _ := x.NewBatch(len(prompt))
	defer b.Close()
	_ = b.AddSequence(prompt, 0, 0, true)
	if err := x.Decode(ctx, b); err != nil {
		fmt.Println(err)
		return
	}

	s, _ := sampler.New(m, sampler.Config{}) // greedy
	defer s.Close()
	var res llama.GenerateResult
	gen := llama.Generate(ctx, x, s, llama.GenerateOptions{Pos: int32(len(prompt)), MaxTokens: 8})
	for tok, err := range gen.Tokens() {
		if err != nil {
			fmt.Println(err)
			return
		}
		_ = tok.Text // stream it
	}
	res = gen.Result()
	fmt.Println(len(res.Tokens), res.Reason, res.NextPos-int32(len(prompt)))
	// Output: 8 max_tokens 8
}
