// Package template renders chat messages, text and images, with a model's
// own Jinja chat template, byte for byte as Hugging Face transformers'
// apply_chat_template does, and turns the result into the prompt mtmd
// tokenizes: one media marker per image.
//
// The package is pure Go. Two calls per conversation are the usual use:
//
//	t, err := template.Resolve(userChoice, model.ChatTemplate()) // a name, a source, or the model's
//	text, err := t.Render(msgs, opts)   // exactly what transformers renders
//	prompt, err := t.Prompt(msgs, opts) // the same, each image as "<__media__>"
//
// [Template.Prompt] replaces what the template family writes for one image
// ("<image>", "<|vision_start|><|image_pad|><|vision_end|>",
// "<start_of_image>", "[IMG]", "<|image|>", "<|image_N|>") with one marker,
// leaving to mtmd the wrapping tokens it adds itself, and checks that there
// is exactly one marker per image part.
//
// # Engine
//
// Templates run on github.com/ardanlabs/jinja, which already has
// trim_blocks, lstrip_blocks, loop controls, {% generation %} and
// transformers' raise_exception message. This package rewrites the
// template source and supplies functions so that the rest behaves as
// jinja2 under transformers' settings (ImmutableSandboxedEnvironment):
//
//   - string literals are decoded as Python's unicode_escape decodes them: a
//     backslash at a line end continues the line; \r, \x.., \u...., octal
//     and friends become characters; unknown escapes such as \s stay;
//   - newlines are normalised and one trailing newline of the source is
//     dropped (keep_trailing_newline=False);
//   - number literals like 1e-5 and 1_000 are read as jinja2 reads them;
//   - brackets are balanced inside tags, so "{{ {'a': {'b': 1}} }}" is one
//     tag; dict(k=v, ...) keeps its keyword order;
//   - messages are ordered dicts ({"role", "content"}, parts {"type",
//     "text"}), so printing a dict or a list of dicts keeps Python's order;
//   - {{ expressions }}, |string and |trim print values with Python's str()
//     (None, 1.0, reprs of lists and dicts with Python's quoting and
//     escapes);
//   - tojson is Python's json.dumps (ensure_ascii=False by default, indent,
//     separators, sort_keys, key order kept, floats as Python writes them);
//   - strftime_now reads an injectable clock ([Options].Now) with Python
//     strftime formats ([Strftime]);
//   - raise_exception fails the render with a *[RaiseError] whose message
//     is the template's, exactly;
//   - range() is limited to 100000 items as in jinja2's sandbox, and an
//     engine panic becomes a *[RenderError], since templates come from
//     model files.
//
// Differences that remain, none of them hit by the corpus or by the
// jinja2 differential cases in testdata: attribute access on an undefined
// value renders "" instead of raising; "~" and join print None as "" and
// 1.0 as "1"; floor division and modulo of negative numbers truncate;
// "%" string formatting, the format filter and str.join/str.format methods
// are missing; upper/capitalize use Go's case mapping ('ß' stays 'ß');
// {%+ and +%} are trimmed like ordinary tags.
//
// A template comes from a model file, so a render is bounded
// ([ErrRenderLimit]): macro calls nest at most [MaxMacroDepth] deep (a
// recursive macro would otherwise overflow Go's stack, which is fatal),
// range() calls make at most [MaxRangeItems] items per render, the output
// is at most [MaxRenderBytes], a render does at most [MaxRenderSteps] steps
// (printed expressions, macro calls, range() calls: work, so that a template
// ends the same way on any machine; [MaxRenderTime] is a wall-clock
// backstop) and stops when [Options].Context is cancelled, and multiplying
// by an integer literal above 1,000,000 is refused at compile time.
package template
