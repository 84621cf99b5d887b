package jsonschema_test

import (
	"errors"
	"fmt"

	"github.com/vlm-go/vlm/sampler"
	"github.com/vlm-go/vlm/sampler/jsonschema"
)

func Example() {
	schema := []byte(`{"type":"object","properties":{"age":{"type":"integer","minimum":0,"maximum":120}},"required":["age"]}`)
	g, err := jsonschema.Grammar(schema)
	if err != nil {
		panic(err)
	}
	cfg := sampler.Config{Temperature: 0.8, Grammar: g} // sampler.New(model, cfg)
	fmt.Println(cfg.Grammar != "")

	// What cannot be expressed exactly is refused, naming the keyword.
	_, err = jsonschema.Grammar([]byte(`{"type":"integer","multipleOf":3}`))
	var se *jsonschema.Error
	fmt.Println(errors.Is(err, jsonschema.ErrSchema), errors.As(err, &se), se.Keyword)
	// Output:
	// true
	// true true multipleOf
}

// A Builder puts several schemas' values into one grammar: here a tool
// call whose arguments follow the tool's parameters.
func ExampleBuilder() {
	b := jsonschema.NewBuilder()
	args, err := b.Schema("weather-args", []byte(`{"type":"object","properties":{"city":{"type":"string","maxLength":40}},"required":["city"]}`))
	if err != nil {
		panic(err)
	}
	call := b.Rule("weather-call", jsonschema.Quote(`{"name": "get_weather", "arguments": `)+" "+args+" "+jsonschema.Quote("}"))
	g := b.Grammar(call)
	fmt.Println(call, len(g) > 0)
	// Output: weather-call true
}
