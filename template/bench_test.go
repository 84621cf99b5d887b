package template

import (
	"testing"
)

// chat20Turns4Images is a 20-turn chat (10 user, 10 assistant) with 4
// images in user turns: two in the first, one in the 4th and 8th.
func chat20Turns4Images() []Message {
	var msgs []Message
	for i := range 10 {
		var parts []Part
		switch i {
		case 0:
			parts = append(parts, Image(), Image())
		case 3, 7:
			parts = append(parts, Image())
		}
		parts = append(parts, Text("Here is my question number "+string(rune('0'+i))+": what do you see, and how does it compare with before?"))
		msgs = append(msgs, User(parts...))
		msgs = append(msgs, Assistant(Text("I see a cat on a red sofa next to a window; compared with before, the light is warmer and the cat has moved.")))
	}
	return msgs
}

func benchTemplate(b *testing.B) *Template {
	return readCorpusTemplate(b, "qwen2-vl")
}

// BenchmarkRender20Turns4Images renders a 20-turn chat with 4 images with
// the Qwen2-VL template of the corpus.
func BenchmarkRender20Turns4Images(b *testing.B) {
	tmpl := benchTemplate(b)
	msgs := chat20Turns4Images()
	opts := Options{AddGenerationPrompt: true, EOSToken: "<|im_end|>"}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := tmpl.Render(msgs, opts); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkPrompt20Turns4Images is the same chat turned into the mtmd
// prompt (render, then the placeholders replaced by markers).
func BenchmarkPrompt20Turns4Images(b *testing.B) {
	tmpl := benchTemplate(b)
	msgs := chat20Turns4Images()
	opts := Options{AddGenerationPrompt: true, EOSToken: "<|im_end|>"}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := tmpl.Prompt(msgs, opts); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkCompileCached is Compile of a source already in the cache.
func BenchmarkCompileCached(b *testing.B) {
	src := benchTemplate(b).Source()
	for b.Loop() {
		if _, err := Compile(src); err != nil {
			b.Fatal(err)
		}
	}
}
