package template

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
)

// DefaultMarker is mtmd's default media marker (mtmd_default_marker()):
// mtmd_tokenize puts the next image at each occurrence of it.
const DefaultMarker = "<__media__>"

// ImageStyle says how a template family writes one image, so that
// [Template.Prompt] can replace it with exactly one media marker. The
// pinned mtmd adds each projector's own wrapping around the image's
// embeddings (Qwen2-VL's <|vision_start|>/<|vision_end|>, Gemma 3's
// <start_of_image>/<end_of_image>, LFM2's <|image_start|>/<|image_end|>,
// Idefics3's <fake_token_around_image><global-img>, Pixtral's [IMG_END]),
// so a placeholder includes whatever wrapping the template writes, and the
// wrapping is not doubled.
type ImageStyle struct {
	// Name identifies the style, e.g. "qwen2-vl".
	Name string

	// Placeholder is the text the template writes for one image, e.g.
	// "<image>". Empty means the template writes the media marker itself.
	Placeholder string

	// Pattern, when set, is a regular expression (RE2) matching the text
	// written for one image, used instead of Placeholder for numbered
	// placeholders (Phi-3-vision's <|image_1|>, <|image_2|>, ...).
	Pattern string

	// StringImage, when set, marks a template that takes only plain string
	// content: [Template.Prompt] first turns each message's parts into one
	// string (see [FlattenImages]), writing image n (1-based, counted
	// across the conversation) as fmt.Sprintf(StringImage, n).
	StringImage string
}

// Image styles of the families in the chat-template corpus, and two
// generic ones.
var (
	// StyleMediaMarker is a template that writes mtmd's default marker
	// itself (the built-in templates of this package do).
	StyleMediaMarker = ImageStyle{Name: "media-marker", Placeholder: DefaultMarker}
	// StyleUnknown is a template with no known image placeholder: it must
	// write the media marker itself, else Prompt fails with ErrImageCount.
	StyleUnknown = ImageStyle{Name: "unknown"}

	// StyleSmolVLM is SmolVLM / Idefics3: "<image>".
	StyleSmolVLM = ImageStyle{Name: "smolvlm", Placeholder: "<image>"}
	// StyleQwen2VL is Qwen2-VL / Qwen2.5-VL: the whole
	// "<|vision_start|><|image_pad|><|vision_end|>" (mtmd adds the
	// vision_start/vision_end tokens itself).
	StyleQwen2VL = ImageStyle{Name: "qwen2-vl", Placeholder: "<|vision_start|><|image_pad|><|vision_end|>"}
	// StyleGemma3 is Gemma 3: "<start_of_image>" (mtmd adds it back with
	// <end_of_image>).
	StyleGemma3 = ImageStyle{Name: "gemma-3", Placeholder: "<start_of_image>"}
	// StyleLLaVA is LLaVA-1.5 (llava-hf): "<image>" (the "\n" after it stays).
	StyleLLaVA = ImageStyle{Name: "llava-1-5", Placeholder: "<image>"}
	// StyleLlama32Vision is Llama 3.2 Vision: "<|image|>".
	StyleLlama32Vision = ImageStyle{Name: "llama-3-2-vision", Placeholder: "<|image|>"}
	// StyleMistral3 is Mistral-Small-3.1 and other Pixtral-style templates: "[IMG]".
	StyleMistral3 = ImageStyle{Name: "mistral-small-3-1", Placeholder: "[IMG]"}
	// StyleLFM2VL is LFM2-VL: "<image>".
	StyleLFM2VL = ImageStyle{Name: "lfm2-vl", Placeholder: "<image>"}
	// StylePhi3Vision is Phi-3-vision: string content only, images written
	// into the text as "<|image_N|>\n" (the model cards' convention).
	StylePhi3Vision = ImageStyle{Name: "phi-3-vision", Pattern: `<\|image_[0-9]+\|>`, StringImage: "<|image_%d|>\n"}
)

// DetectImageStyle guesses a template's image style from its source by
// the placeholder it writes. It returns [StyleUnknown] when it finds none.
func DetectImageStyle(source string) ImageStyle {
	has := func(s string) bool { return strings.Contains(source, s) }
	switch {
	case has(StyleQwen2VL.Placeholder):
		return StyleQwen2VL
	case has(StyleGemma3.Placeholder):
		return StyleGemma3
	case has(StyleMistral3.Placeholder):
		return StyleMistral3
	case has(StyleLlama32Vision.Placeholder):
		return StyleLlama32Vision
	case has("<image>"):
		switch {
		case has("<end_of_utterance>"):
			return StyleSmolVLM
		case has("<|im_start|>"):
			return StyleLFM2VL
		case has("ASSISTANT") || has("USER") || has("upper"):
			return StyleLLaVA
		}
		return ImageStyle{Name: "image-tag", Placeholder: "<image>"}
	case has(DefaultMarker):
		return StyleMediaMarker
	case has("<|end|>") && has("<|assistant|>") && has("message['content']"):
		return StylePhi3Vision
	}
	return StyleUnknown
}

// FlattenImages returns msgs with every parts message turned into a
// plain-string message: text parts concatenated in order, image n (1-based,
// counted across all messages) written as fmt.Sprintf(imageFormat, n), other
// parts dropped. String messages are kept. This is how templates that take
// only strings (Phi-3-vision: "<|image_%d|>\n") get images.
func FlattenImages(msgs []Message, imageFormat string) []Message {
	out := make([]Message, len(msgs))
	n := 0
	for i, m := range msgs {
		out[i] = m
		if m.Content == nil {
			continue
		}
		var b strings.Builder
		for _, p := range m.Content {
			switch p.Type {
			case TypeText:
				b.WriteString(p.Text)
			case TypeImage:
				n++
				fmt.Fprintf(&b, imageFormat, n)
			}
		}
		out[i].Content = nil
		out[i].Text = b.String()
	}
	return out
}

var patternCache sync.Map // pattern string -> *regexp.Regexp

// matcher finds the style's placeholders in text.
type matcher struct {
	literal string
	re      *regexp.Regexp
}

func (s ImageStyle) matcher(marker string) (matcher, error) {
	if s.Pattern != "" {
		if re, ok := patternCache.Load(s.Pattern); ok {
			return matcher{re: re.(*regexp.Regexp)}, nil
		}
		re, err := regexp.Compile(s.Pattern)
		if err != nil {
			return matcher{}, fmt.Errorf("template: image style %q: %w", s.Name, err)
		}
		patternCache.Store(s.Pattern, re)
		return matcher{re: re}, nil
	}
	if s.Placeholder == "" {
		return matcher{literal: marker}, nil
	}
	return matcher{literal: s.Placeholder}, nil
}

func (m matcher) count(s string) int {
	if m.re != nil {
		return len(m.re.FindAllStringIndex(s, -1))
	}
	return strings.Count(s, m.literal)
}

func (m matcher) replace(s, with string) string {
	if m.re != nil {
		return m.re.ReplaceAllLiteralString(s, with)
	}
	if m.literal == with {
		return s
	}
	return strings.ReplaceAll(s, m.literal, with)
}

var guardSeq atomic.Uint64

// Prompt renders the messages and returns the prompt for mtmd_tokenize:
// the text [Template.Render] gives, with the placeholder the template
// writes for each image replaced by exactly one media marker (opts.Marker,
// default [DefaultMarker]), in the order the template writes them (for
// every corpus family, the order of the image parts). The images handed to
// mtmd go in that order.
//
// Text in the messages that happens to contain the family's placeholder
// (say a user typing "<image>") stays text: Prompt then renders a second
// time with such text guarded, so only placeholders the template wrote
// become markers. The number of markers in the result must equal the
// number of image parts, else Prompt returns an *[ImageCountError]
// ([ErrImageCount]): e.g. a template that drops images, or message text
// containing the media marker itself, which mtmd would take for an image.
func (t *Template) Prompt(msgs []Message, opts Options) (string, error) {
	style := t.style
	if opts.Style != nil {
		style = *opts.Style
	}
	marker := opts.Marker
	if marker == "" {
		marker = DefaultMarker
	}
	m, err := style.matcher(marker)
	if err != nil {
		return "", err
	}
	images := CountImages(msgs)

	// Guard message text that contains a placeholder or the marker.
	guard, originals, guarded := guardTexts(msgs, m, marker, t.source)
	if guarded != nil {
		msgs = guarded
	}
	if style.StringImage != "" {
		msgs = FlattenImages(msgs, style.StringImage)
	}
	out, err := t.Render(msgs, opts)
	if err != nil {
		return "", err
	}
	found := m.count(out)
	if found != images {
		return "", &ImageCountError{Images: images, Markers: found, Style: style.Name,
			Detail: fmt.Sprintf("the template wrote %d image placeholder(s) %s", found, m.describe())}
	}
	out = m.replace(out, marker)
	if guard != "" {
		for i, orig := range originals {
			out = strings.ReplaceAll(out, guard+strconv.Itoa(i)+"\x00", orig)
		}
	}
	if n := strings.Count(out, marker); n != images {
		return "", &ImageCountError{Images: images, Markers: n, Style: style.Name,
			Detail: fmt.Sprintf("the messages' text contains the media marker %q", marker)}
	}
	return out, nil
}

func (m matcher) describe() string {
	if m.re != nil {
		return "matching " + strconv.Quote(m.re.String())
	}
	return strconv.Quote(m.literal)
}

// guardTexts replaces, in a copy of msgs, every placeholder and marker in
// message text by a guard string that no template turns into a placeholder.
// It returns the guard prefix, the original texts by index, and the copy;
// the copy is nil when no text needed guarding.
func guardTexts(msgs []Message, m matcher, marker, source string) (string, []string, []Message) {
	needs := func(s string) bool {
		return m.count(s) > 0 || strings.Contains(s, marker)
	}
	need := false
	for _, msg := range msgs {
		if msg.Content == nil {
			need = need || needs(msg.Text)
			continue
		}
		for _, p := range msg.Content {
			need = need || needs(p.Text)
		}
	}
	if !need {
		return "", nil, nil
	}
	// A prefix that appears in no text and not in the template. It has no
	// letters and no spaces, so filters like upper, capitalize or trim leave
	// it alone.
	var guard string
	for {
		guard = "\x00\x01" + strconv.FormatUint(guardSeq.Add(1), 10) + "\x02"
		clash := strings.Contains(source, guard)
		for _, msg := range msgs {
			clash = clash || strings.Contains(msg.Text, guard)
			for _, p := range msg.Content {
				clash = clash || strings.Contains(p.Text, guard)
			}
		}
		if !clash {
			break
		}
	}
	var originals []string
	protect := func(s string) string {
		if !needs(s) {
			return s
		}
		var spans [][2]int
		if m.re != nil {
			for _, loc := range m.re.FindAllStringIndex(s, -1) {
				spans = append(spans, [2]int{loc[0], loc[1]})
			}
		} else {
			spans = appendLiteralSpans(spans, s, m.literal)
		}
		if marker != m.literal {
			spans = appendLiteralSpans(spans, s, marker)
		}
		spans = mergeSpans(spans)
		var b strings.Builder
		last := 0
		for _, sp := range spans {
			b.WriteString(s[last:sp[0]])
			b.WriteString(guard + strconv.Itoa(len(originals)) + "\x00")
			originals = append(originals, s[sp[0]:sp[1]])
			last = sp[1]
		}
		b.WriteString(s[last:])
		return b.String()
	}
	out := make([]Message, len(msgs))
	for i, msg := range msgs {
		out[i] = msg
		if msg.Content == nil {
			out[i].Text = protect(msg.Text)
			continue
		}
		parts := make([]Part, len(msg.Content))
		for j, p := range msg.Content {
			parts[j] = p
			parts[j].Text = protect(p.Text)
		}
		out[i].Content = parts
	}
	return guard, originals, out
}

func appendLiteralSpans(spans [][2]int, s, lit string) [][2]int {
	if lit == "" {
		return spans
	}
	for off := 0; ; {
		k := strings.Index(s[off:], lit)
		if k < 0 {
			return spans
		}
		spans = append(spans, [2]int{off + k, off + k + len(lit)})
		off += k + len(lit)
	}
}

// mergeSpans sorts spans by start and merges overlapping ones.
func mergeSpans(spans [][2]int) [][2]int {
	for i := 1; i < len(spans); i++ {
		for j := i; j > 0 && spans[j][0] < spans[j-1][0]; j-- {
			spans[j], spans[j-1] = spans[j-1], spans[j]
		}
	}
	var out [][2]int
	for _, sp := range spans {
		if n := len(out); n > 0 && sp[0] < out[n-1][1] {
			out[n-1][1] = max(out[n-1][1], sp[1])
			continue
		}
		out = append(out, sp)
	}
	return out
}
