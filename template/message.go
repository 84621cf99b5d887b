package template

import (
	"fmt"

	"github.com/ardanlabs/jinja"
)

// Part types understood by the chat templates of vision-language models
// (the Hugging Face convention: {"type": "image"} and
// {"type": "text", "text": "..."}).
const (
	TypeText  = "text"  // a text part; its text is Part.Text
	TypeImage = "image" // an image part; the image itself travels beside the prompt
)

// Part is one element of a message's content list.
//
// A part becomes the dict {"type": Type} followed by "text": Text when Type
// is [TypeText] (or Text is set), followed by the keys of Extra in order.
// Image parts carry no pixels: the caller keeps its images in the order of
// the image parts and hands them to mtmd with the prompt from
// [Template.Prompt].
type Part struct {
	Type  string // TypeText, TypeImage, or another type the template knows (e.g. "video")
	Text  string // the text of a text part
	Extra Map    // further keys of the part's dict, in order (rarely needed)
}

// Text returns a text part.
func Text(s string) Part { return Part{Type: TypeText, Text: s} }

// Image returns an image part: {"type": "image"}.
func Image() Part { return Part{Type: TypeImage} }

// Message is one chat turn.
//
// Its content is either a list of parts (Content non-nil, the Hugging Face
// multimodal form) or a plain string (Content nil: the string is Text).
// Templates render the two forms differently, just as transformers passes
// them through unchanged, so the choice is the caller's: use [User],
// [Assistant], [System] for parts and [UserText], [AssistantText],
// [SystemText] for a plain string. Setting both Content and Text is an
// error ([ErrInvalidMessage]).
//
// A message becomes the dict {"role": Role, "content": ...} followed by the
// keys of Extra in order (e.g. "tool_calls", "thinking").
type Message struct {
	Role    string // "system", "user", "assistant", or another role the template knows
	Content []Part // the content as parts; nil means the content is the string Text
	Text    string // the content as a plain string, used when Content is nil
	Extra   Map    // further keys of the message's dict, in order
}

// User returns a user message whose content is the given parts.
func User(parts ...Part) Message { return Message{Role: "user", Content: nonNil(parts)} }

// Assistant returns an assistant message whose content is the given parts.
func Assistant(parts ...Part) Message { return Message{Role: "assistant", Content: nonNil(parts)} }

// System returns a system message whose content is the given parts.
func System(parts ...Part) Message { return Message{Role: "system", Content: nonNil(parts)} }

// UserText returns a user message whose content is the plain string s.
func UserText(s string) Message { return Message{Role: "user", Text: s} }

// AssistantText returns an assistant message whose content is the plain string s.
func AssistantText(s string) Message { return Message{Role: "assistant", Text: s} }

// SystemText returns a system message whose content is the plain string s.
func SystemText(s string) Message { return Message{Role: "system", Text: s} }

func nonNil(parts []Part) []Part {
	if parts == nil {
		return []Part{}
	}
	return parts
}

// IsString reports whether the message's content is a plain string
// (Content is nil) rather than a list of parts.
func (m Message) IsString() bool { return m.Content == nil }

// Images returns the number of image parts in the message.
func (m Message) Images() int {
	n := 0
	for _, p := range m.Content {
		if p.Type == TypeImage {
			n++
		}
	}
	return n
}

// CountImages returns the number of image parts in msgs.
func CountImages(msgs []Message) int {
	n := 0
	for _, m := range msgs {
		n += m.Images()
	}
	return n
}

// KV is one key/value pair of a [Map].
type KV struct {
	Key   string // the dict key
	Value any    // converted as Options.Vars values are
}

// Map is an ordered mapping. Templates see it as a dict whose keys keep
// this order, as a Python dict keeps insertion order; a Go map is given to
// templates with its keys sorted instead. Use Map (or json.RawMessage) when
// the order shows in the output, e.g. a dict printed or passed to tojson.
type Map []KV

// value converts a part into the engine's ordered dict.
func (p Part) value() (jinja.Value, error) {
	d := jinja.NewDict()
	dict := d.AsDict()
	dict.Set("type", jinja.NewString(p.Type))
	if p.Type == TypeText || p.Text != "" {
		dict.Set("text", jinja.NewString(p.Text))
	}
	if err := setExtra(dict, p.Extra); err != nil {
		return jinja.Value{}, err
	}
	return d, nil
}

// value converts a message into the engine's ordered dict.
func (m Message) value() (jinja.Value, error) {
	if m.Content != nil && m.Text != "" {
		return jinja.Value{}, fmt.Errorf("%w: role %q has both Content (parts) and Text (string content)", ErrInvalidMessage, m.Role)
	}
	d := jinja.NewDict()
	dict := d.AsDict()
	dict.Set("role", jinja.NewString(m.Role))
	if m.Content == nil {
		dict.Set("content", jinja.NewString(m.Text))
	} else {
		items := make([]jinja.Value, len(m.Content))
		for i, p := range m.Content {
			v, err := p.value()
			if err != nil {
				return jinja.Value{}, err
			}
			items[i] = v
		}
		dict.Set("content", jinja.NewList(items))
	}
	if err := setExtra(dict, m.Extra); err != nil {
		return jinja.Value{}, fmt.Errorf("role %q: %w", m.Role, err)
	}
	return d, nil
}

func setExtra(dict *jinja.Dict, extra Map) error {
	for _, kv := range extra {
		v, err := toValue(kv.Value)
		if err != nil {
			return fmt.Errorf("%w: key %q: %w", ErrInvalidMessage, kv.Key, err)
		}
		dict.Set(kv.Key, v)
	}
	return nil
}

// messagesValue converts msgs into the engine's list of dicts.
func messagesValue(msgs []Message) (jinja.Value, error) {
	items := make([]jinja.Value, len(msgs))
	for i, m := range msgs {
		v, err := m.value()
		if err != nil {
			return jinja.Value{}, fmt.Errorf("message %d: %w", i, err)
		}
		items[i] = v
	}
	return jinja.NewList(items), nil
}
