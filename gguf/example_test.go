package gguf_test

import (
	"bytes"
	"errors"
	"fmt"
	"log"

	"github.com/vlm-go/vlm/gguf"
)

// Example writes a tiny file with two tensors and reads its metadata back.
func Example() {
	w := gguf.NewWriter()
	if err := w.AddKV("general.architecture", "llama"); err != nil {
		log.Fatal(err)
	}
	if err := w.AddKV("tokenizer.ggml.tokens", []string{"<unk>", "<s>", "</s>"}); err != nil {
		log.Fatal(err)
	}
	q, err := gguf.EncodeQ8_0(make([]float32, 64))
	if err != nil {
		log.Fatal(err)
	}
	if err := w.AddTensor("token_embd.weight", gguf.TypeQ8_0, []uint64{32, 2}, q); err != nil {
		log.Fatal(err)
	}
	norm := gguf.EncodeF32([]float32{1, 1, 1, 1})
	if err := w.AddTensor("output_norm.weight", gguf.TypeF32, []uint64{4}, norm); err != nil {
		log.Fatal(err)
	}
	var buf bytes.Buffer
	if _, err := w.WriteTo(&buf); err != nil {
		log.Fatal(err)
	}

	f, err := gguf.Read(bytes.NewReader(buf.Bytes()), int64(buf.Len()))
	if err != nil {
		log.Fatal(err)
	}
	tokens, _ := f.Strings("tokenizer.ggml.tokens")
	fmt.Println("version:", f.Version, "architecture:", f.Architecture(), "tokens:", len(tokens))
	for _, t := range f.Tensors {
		fmt.Printf("%s %s %v %d bytes at +%d\n", t.Name, t.Type, t.Shape, t.Size, t.Offset)
	}
	fmt.Println("parameters:", f.ParamCount())
	// Output:
	// version: 3 architecture: llama tokens: 3
	// token_embd.weight q8_0 [32 2] 68 bytes at +0
	// output_norm.weight f32 [4] 16 bytes at +96
	// parameters: 68
}

// ExampleValidateModel shows how a loader tells the classes of problems apart.
func ExampleValidateModel() {
	w := gguf.NewWriter()
	_ = w.AddKV("general.architecture", "llama")
	_ = w.AddKV("tokenizer.ggml.model", "gpt2")
	_ = w.AddKV("tokenizer.ggml.tokens", []string{"a", "b", "a"})
	var buf bytes.Buffer
	_, _ = w.WriteTo(&buf)
	f, err := gguf.Read(bytes.NewReader(buf.Bytes()), int64(buf.Len()))
	if err != nil {
		log.Fatal(err)
	}
	err = gguf.ValidateModel(f)
	fmt.Println(errors.Is(err, gguf.ErrDuplicateToken), errors.Is(err, gguf.ErrWouldAbort), errors.Is(err, gguf.ErrMissingKey))
	// Output:
	// true true true
}
