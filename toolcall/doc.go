// Package toolcall gives vision-language models OpenAI-style tools: it
// lays tools, calls and results out the way each model family's chat
// template expects them, builds the grammar that constrains a call to the
// tools' parameter schemas, and parses what the model wrote back into
// calls — whole or as a stream.
//
// A [Format] is one family's call syntax, found from the chat template's
// source by [Detect]:
//
//	format        template                                 a call as the model writes it
//	llama3-json   Llama 3.2 Vision, Llama 4                {"name": "f", "parameters": {...}}
//	mistral-v7    Mistral Small 3.1                        [TOOL_CALLS][{"name": "f", "arguments": {...}}]
//	mistral-v11   Mistral Small 3.2                        [TOOL_CALLS]f[CALL_ID]abcDEF123[ARGS]{...}
//	lfm2          LFM2-VL / LFM2.5-VL                      <|tool_call_start|>[f(a="x", n=1)]<|tool_call_end|>
//	qwen-xml      Qwen3.5                                  <tool_call>\n<function=f>\n<parameter=a>\nx\n</parameter>\n</function>\n</tool_call>
//	gemma4        Gemma 4                                  <|tool_call>call:f{a:<|"|>x<|"|>,n:1}<tool_call|>
//	hermes        any other template (generic)             <tool_call>\n{"name": "f", "arguments": {...}}\n</tool_call>
//
// The first six are native: their templates take the `tools` variable,
// assistant `tool_calls` and `tool` messages, and [Format.Prepare] passes
// them through unchanged (arguments as JSON objects, which every one of
// these templates can print; call ids made 9 characters for Mistral,
// whose templates require it). Templates that ignore tools — Qwen2-VL /
// Qwen2.5-VL, Gemma 3, SmolVLM, LLaVA — get the generic format, which
// [Format.Prepare] writes into the conversation itself:
//
//   - a system section (appended to the conversation's system message, or
//     a new one at the start):
//
//     # Tools
//
//     You may call one or more functions to assist with the user query.
//
//     You are provided with function signatures within <tools></tools> XML tags:
//     <tools>
//     {"type": "function", "function": {"name": ..., "description": ..., "parameters": ...}}
//     </tools>
//
//     For each function call, return a json object with function name and arguments within <tool_call></tool_call> XML tags:
//     <tool_call>
//     {"name": <function-name>, "arguments": <args-json-object>}
//     </tool_call>
//
//     (the Hermes format Qwen2.5 was trained on, which Qwen2.5-VL's template
//     dropped);
//
//   - an assistant message with tool_calls becomes its text followed by one
//     <tool_call>…</tool_call> block per call;
//
//   - tool results become a user message holding one
//     <tool_response>\n…\n</tool_response> block per result (consecutive
//     results in one message).
//
// Constraint: [Format.Grammar] builds a GBNF grammar (llama.cpp's grammar
// format) from the tools' parameter schemas. With [ChoiceRequired] or a
// named function it must be followed from the first token; with
// [ChoiceAuto] it is lazy: the model writes what it likes until it writes
// the family's call marker (Grammar.Triggers, regular expressions matched
// against the output so far, as llama.cpp's lazy grammars take them), and
// from there the call must follow the grammar. [ChoiceNone] offers no
// tools. Parallel calls (more than one call in one answer) are allowed
// unless the request says otherwise.
//
// Parsing: [Format.Parse] splits a finished answer into its text and its
// calls; a [Streamer] does it as the text arrives, holding back only what
// may be the start of a call marker.
package toolcall
