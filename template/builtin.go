package template

import (
	"fmt"
	"slices"
	"strings"
	"sync"
)

// The built-in templates, for models whose GGUF carries no chat template.
// They are written for this package (not copies of the models' files) and
// render the corpus conversations as the families' own templates do, except
// that they also accept plain-string content where the originals do not.
var builtinSources = map[string]string{
	// ChatML with images written as mtmd's media marker.
	"chatml": `
{%- for message in messages -%}
{{- '<|im_start|>' + message['role'] + '\n' -}}
{%- if message['content'] is string -%}
{{- message['content'] -}}
{%- else -%}
{%- for part in message['content'] -%}
{%- if part['type'] == 'image' -%}{{- '<__media__>' -}}
{%- elif part['type'] == 'text' -%}{{- part['text'] -}}
{%- endif -%}
{%- endfor -%}
{%- endif -%}
{{- '<|im_end|>\n' -}}
{%- endfor -%}
{%- if add_generation_prompt -%}{{- '<|im_start|>assistant\n' -}}{%- endif -%}
`,

	// SmolVLM / Idefics3: "User:<image>text<end_of_utterance>\n".
	"smolvlm": `
{{- '<|im_start|>' -}}
{%- for message in messages -%}
{{- message['role'] | capitalize -}}
{%- if message['content'] is string -%}
{{- ': ' + message['content'] -}}
{%- else -%}
{%- if message['content'] and message['content'][0]['type'] == 'image' -%}{{- ':' -}}{%- else -%}{{- ': ' -}}{%- endif -%}
{%- for part in message['content'] -%}
{%- if part['type'] == 'image' -%}{{- '<image>' -}}
{%- elif part['type'] == 'text' -%}{{- part['text'] -}}
{%- endif -%}
{%- endfor -%}
{%- endif -%}
{{- '<end_of_utterance>\n' -}}
{%- endfor -%}
{%- if add_generation_prompt -%}{{- 'Assistant:' -}}{%- endif -%}
`,

	// Qwen2-VL / Qwen2.5-VL: ChatML with a default system turn.
	"qwen2-vl": `
{%- for message in messages -%}
{%- if loop.first and message['role'] != 'system' -%}
{{- '<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n' -}}
{%- endif -%}
{{- '<|im_start|>' + message['role'] + '\n' -}}
{%- if message['content'] is string -%}
{{- message['content'] -}}
{%- else -%}
{%- for part in message['content'] -%}
{%- if part['type'] == 'image' -%}{{- '<|vision_start|><|image_pad|><|vision_end|>' -}}
{%- elif part['type'] == 'text' -%}{{- part['text'] -}}
{%- endif -%}
{%- endfor -%}
{%- endif -%}
{{- '<|im_end|>\n' -}}
{%- endfor -%}
{%- if add_generation_prompt -%}{{- '<|im_start|>assistant\n' -}}{%- endif -%}
`,

	// Gemma 3: system text folded into the first user turn, strict
	// user/model alternation.
	"gemma-3": `
{{- bos_token -}}
{%- set ns = namespace(prefix='', messages=messages) -%}
{%- if messages and messages[0]['role'] == 'system' -%}
{%- if messages[0]['content'] is string -%}
{%- set ns.prefix = messages[0]['content'] + '\n\n' -%}
{%- else -%}
{%- set ns.prefix = (messages[0]['content'] | selectattr('type', 'equalto', 'text') | map(attribute='text') | join('')) + '\n\n' -%}
{%- endif -%}
{%- set ns.messages = messages[1:] -%}
{%- endif -%}
{%- for message in ns.messages -%}
{%- if (message['role'] == 'user') != (loop.index0 % 2 == 0) -%}
{{- raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') -}}
{%- endif -%}
{{- '<start_of_turn>' + ('model' if message['role'] == 'assistant' else message['role']) + '\n' -}}
{%- if loop.first -%}{{- ns.prefix -}}{%- endif -%}
{%- if message['content'] is string -%}
{{- message['content'] | trim -}}
{%- else -%}
{%- for part in message['content'] -%}
{%- if part['type'] == 'image' -%}{{- '<start_of_image>' -}}
{%- elif part['type'] == 'text' -%}{{- part['text'] | trim -}}
{%- endif -%}
{%- endfor -%}
{%- endif -%}
{{- '<end_of_turn>\n' -}}
{%- endfor -%}
{%- if add_generation_prompt -%}{{- '<start_of_turn>model\n' -}}{%- endif -%}
`,

	// LLaVA-1.5 (llava-hf): "USER: <image>\ntext ASSISTANT:", images first.
	"llava-1.5": `
{%- for message in messages -%}
{%- if message['role'] != 'system' -%}{{- (message['role'] | upper) + ': ' -}}{%- endif -%}
{%- if message['content'] is string -%}
{{- message['content'] + ' ' -}}
{%- else -%}
{%- for part in message['content'] -%}
{%- if part['type'] == 'image' -%}{{- '<image>\n' -}}{%- endif -%}
{%- endfor -%}
{%- for part in message['content'] -%}
{%- if part['type'] == 'text' -%}{{- part['text'] + ' ' -}}{%- endif -%}
{%- endfor -%}
{%- endif -%}
{%- endfor -%}
{%- if add_generation_prompt -%}{{- 'ASSISTANT:' -}}{%- endif -%}
`,
}

// builtinAliases maps other spellings to built-in names.
var builtinAliases = map[string]string{
	"idefics3":   "smolvlm",
	"qwen2vl":    "qwen2-vl",
	"qwen2.5-vl": "qwen2-vl",
	"qwen25vl":   "qwen2-vl",
	"gemma3":     "gemma-3",
	"llava":      "llava-1.5",
	"llava-1-5":  "llava-1.5",
}

var builtins = struct {
	mu sync.Mutex
	m  map[string]*Template
}{m: make(map[string]*Template)}

// BuiltinNames returns the names of the built-in templates, sorted.
// [Builtin] also accepts a few aliases (e.g. "gemma3", "qwen2.5-vl",
// "idefics3", "llava").
func BuiltinNames() []string {
	names := make([]string, 0, len(builtinSources))
	for name := range builtinSources {
		names = append(names, name)
	}
	slices.Sort(names)
	return names
}

func canonicalBuiltin(name string) (string, bool) {
	name = strings.ToLower(strings.TrimSpace(name))
	if alias, ok := builtinAliases[name]; ok {
		name = alias
	}
	_, ok := builtinSources[name]
	return name, ok
}

func isBuiltinName(name string) bool {
	_, ok := canonicalBuiltin(name)
	return ok
}

// Builtin returns the built-in template with the given name (see
// [BuiltinNames]), for a model whose GGUF has no chat template: "chatml"
// (images written as the media marker), "smolvlm", "qwen2-vl", "gemma-3",
// "llava-1.5". An unknown name returns an error wrapping
// [ErrUnknownTemplate].
func Builtin(name string) (*Template, error) {
	canon, ok := canonicalBuiltin(name)
	if !ok {
		return nil, fmt.Errorf("%w: %q (known: %s)", ErrUnknownTemplate, name, strings.Join(BuiltinNames(), ", "))
	}
	builtins.mu.Lock()
	defer builtins.mu.Unlock()
	if t, ok := builtins.m[canon]; ok {
		return t, nil
	}
	t, err := compile(builtinSources[canon], canon)
	if err != nil {
		return nil, fmt.Errorf("built-in template %q: %w", canon, err)
	}
	builtins.m[canon] = t
	return t, nil
}
