// Package template renders chat messages, text and images, with a model's
// own Jinja chat template, byte for byte as Hugging Face transformers'
// apply_chat_template does, and turns the result into the prompt mtmd
// tokenizes: one media marker per image.
//
// The package is pure Go. Templates run on github.com/ardanlabs/jinja,
// wrapped so that they behave as under transformers' jinja2 environment
// (trim_blocks, lstrip_blocks, loop controls, {% generation %},
// raise_exception, strftime_now, tojson keeping non-ASCII text):
//
//   - string literals are decoded as jinja2 decodes them (a backslash at a
//     line end continues the line; \r, \x.., \u.... and friends);
//   - one trailing newline of the source is dropped and newlines are
//     normalised, as jinja2's keep_trailing_newline=False lexer does;
//   - messages are passed as ordered dicts ({"role", "content"}, parts
//     {"type", "text"}), so printing a dict or a list of dicts keeps
//     Python's insertion order;
//   - strftime_now reads an injectable clock ([Options].Now) with Python
//     strftime formats ([Strftime]);
//   - raise_exception fails the render with a *[RaiseError] whose message
//     is the template's, exactly;
//   - tojson follows Python's json.dumps (ensure_ascii=False by default,
//     indent, separators, sort_keys, key order kept).
//
// Two calls per conversation are the usual use:
//
//	t, err := template.Resolve(userChoice, model.ChatTemplate())
//	text, err := t.Render(msgs, opts)  // exactly what transformers renders
//	prompt, err := t.Prompt(msgs, opts) // the same, each image as "<__media__>"
//
// [Template.Prompt] replaces what the template family writes for an image
// ("<image>", "<|vision_start|><|image_pad|><|vision_end|>",
// "<start_of_image>", "[IMG]", "<|image|>", ...) with one marker, leaving
// the wrapping tokens mtmd adds itself to mtmd, and checks that there is
// exactly one marker per image part.
package template
