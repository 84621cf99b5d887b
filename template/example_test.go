package template_test

import (
	"errors"
	"fmt"

	"github.com/vlm-go/vlm/template"
)

// Render a chat with an image through a chat template, then get the prompt
// for mtmd: the template's image placeholder becomes one media marker.
func Example() {
	// A model's own template would come from its GGUF
	// (tokenizer.chat_template); here a built-in one stands in.
	tmpl, err := template.Resolve("qwen2-vl", "")
	if err != nil {
		panic(err)
	}
	msgs := []template.Message{
		template.User(template.Image(), template.Text("What is in this picture?")),
	}
	opts := template.Options{AddGenerationPrompt: true, EOSToken: "<|im_end|>"}

	text, err := tmpl.Render(msgs, opts) // what transformers renders
	if err != nil {
		panic(err)
	}
	prompt, err := tmpl.Prompt(msgs, opts) // what mtmd_tokenize takes
	if err != nil {
		panic(err)
	}
	fmt.Println(text)
	fmt.Println("---")
	fmt.Println(prompt)
	// Output:
	// <|im_start|>system
	// You are a helpful assistant.<|im_end|>
	// <|im_start|>user
	// <|vision_start|><|image_pad|><|vision_end|>What is in this picture?<|im_end|>
	// <|im_start|>assistant
	//
	// ---
	// <|im_start|>system
	// You are a helpful assistant.<|im_end|>
	// <|im_start|>user
	// <__media__>What is in this picture?<|im_end|>
	// <|im_start|>assistant
}

// Compile a model's template; images in several messages, plain-string
// content beside parts.
func ExampleCompile() {
	const smolvlm = `<|im_start|>{% for message in messages %}{{message['role'] | capitalize}}{% if message['content'][0]['type'] == 'image' %}{{':'}}{% else %}{{': '}}{% endif %}{% for line in message['content'] %}{% if line['type'] == 'text' %}{{line['text']}}{% elif line['type'] == 'image' %}{{ '<image>' }}{% endif %}{% endfor %}<end_of_utterance>
{% endfor %}{% if add_generation_prompt %}{{ 'Assistant:' }}{% endif %}`
	tmpl, err := template.Compile(smolvlm)
	if err != nil {
		panic(err)
	}
	msgs := []template.Message{
		template.User(template.Image(), template.Image(), template.Text("Which is bigger?")),
		template.Assistant(template.Text("The left one.")),
		template.User(template.Text("And now?"), template.Image()),
	}
	prompt, err := tmpl.Prompt(msgs, template.Options{AddGenerationPrompt: true})
	if err != nil {
		panic(err)
	}
	fmt.Println(tmpl.Style().Name, template.CountImages(msgs))
	fmt.Println(prompt)
	// Output:
	// smolvlm 3
	// <|im_start|>User:<__media__><__media__>Which is bigger?<end_of_utterance>
	// Assistant: The left one.<end_of_utterance>
	// User: And now?<__media__><end_of_utterance>
	// Assistant:
}

// raise_exception in a template surfaces as a *RaiseError with the
// template's message.
func ExampleRaiseError() {
	tmpl, err := template.Builtin("gemma-3")
	if err != nil {
		panic(err)
	}
	_, err = tmpl.Render([]template.Message{template.UserText("a"), template.UserText("b")}, template.Options{})
	var raise *template.RaiseError
	fmt.Println(errors.As(err, &raise))
	fmt.Println(err)
	// Output:
	// true
	// Conversation roles must alternate user/assistant/user/assistant/...
}
