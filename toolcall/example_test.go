package toolcall_test

import (
	"encoding/json"
	"fmt"

	"github.com/vlm-go/vlm/template"
	"github.com/vlm-go/vlm/toolcall"
)

// A chat template's call format is found from its source; an answer
// written in it parses into calls.
func ExampleFormat_Parse() {
	f := toolcall.Detect(`{%- if tools %}...<tool_call>\n<function=...{%- endif %}`)
	tools := []toolcall.Tool{{Name: "get_weather", Parameters: json.RawMessage(
		`{"type": "object", "properties": {"city": {"type": "string"}, "days": {"type": "integer"}}}`)}}
	answer := "Let me check.\n<tool_call>\n<function=get_weather>\n<parameter=city>\nParis\n</parameter>\n" +
		"<parameter=days>\n3\n</parameter>\n</function>\n</tool_call>"
	content, calls, err := f.Parse(answer, tools)
	if err != nil {
		panic(err)
	}
	fmt.Println(f.Name())
	fmt.Printf("%q\n", content)
	fmt.Println(calls[0].Name, string(calls[0].Arguments))
	// Output:
	// qwen-xml
	// "Let me check."
	// get_weather {"city":"Paris","days":3}
}

// Templates that ignore tools get the generic format: Prepare writes the
// tools into the system prompt and the history's calls and results into
// the messages.
func ExampleFormat_Prepare() {
	f := toolcall.Detect("{% for m in messages %}{{ m.content }}{% endfor %}")
	msgs, vars := f.Prepare([]template.Message{
		template.User(template.Text("Weather in Paris?")),
		toolcall.AssistantCalls("", []toolcall.Call{{ID: "abcDEF123", Name: "get_weather", Arguments: json.RawMessage(`{"city":"Paris"}`)}}),
		toolcall.Result("abcDEF123", "get_weather", "sunny"),
	}, []toolcall.Tool{{Name: "get_weather", Description: "Weather in a city"}})
	fmt.Println(f.Name(), f.Native(), vars == nil)
	for _, m := range msgs[1:] {
		fmt.Printf("%s: %q\n", m.Role, m.Content[0].Text)
	}
	// Output:
	// hermes false true
	// user: "Weather in Paris?"
	// assistant: "<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Paris\"}}\n</tool_call>"
	// user: "<tool_response>\nsunny\n</tool_response>"
}
