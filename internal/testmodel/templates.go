package testmodel

import (
	_ "embed"
)

// The families' real chat templates (origins in templates/README.md).
var (
	//go:embed templates/smolvlm.jinja
	templateSmolVLM string
	//go:embed templates/gemma-3.jinja
	templateGemma3 string
	//go:embed templates/llava-1-5.jinja
	templateLLaVA string
	//go:embed templates/qwen2-vl.jinja
	templateQwen2VL string
)

// ChatTemplate returns the chat template (Jinja) embedded in text models of
// family f, or "" for an unknown family.
func ChatTemplate(f Family) string {
	if !knownFamily(f) {
		return ""
	}
	return family(f).template
}
