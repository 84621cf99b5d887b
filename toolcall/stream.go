package toolcall

import "strings"

// Streamer splits an answer into text and calls as it is generated: Write
// returns the text that is certainly not part of a call, holding back what
// may be the start of the family's call marker; Finish parses the whole
// answer and returns the text not yet returned and the calls.
type Streamer struct {
	f       *Format
	tools   []Tool
	all     strings.Builder
	emitted int  // bytes of all returned as text
	inCall  bool // a call marker was seen: nothing more is text until Finish
}

// NewStreamer returns a streamer for one answer.
func (f *Format) NewStreamer(tools []Tool) *Streamer { return &Streamer{f: f, tools: tools} }

// Write adds generated text and returns the text that can be shown now.
func (s *Streamer) Write(delta string) string {
	s.all.WriteString(delta)
	if s.inCall {
		return ""
	}
	text := s.all.String()
	if at := s.f.start(text); at >= 0 {
		s.inCall = true
		return s.take(text, at)
	}
	if s.f.marker == "" {
		// llama3-json: undecided while only whitespace came; a call must
		// start the answer.
		if strings.TrimSpace(text) == "" {
			return ""
		}
		t := strings.TrimLeft(text, " \t\r\n")
		for _, tag := range []string{"<|python_tag|>", "<|python_start|>"} {
			if strings.HasPrefix(tag, t) {
				return ""
			}
		}
		return s.take(text, len(text))
	}
	return s.take(text, len(text)-partialSuffix(text, s.f.marker))
}

// take returns text[emitted:end] and marks it returned.
func (s *Streamer) take(text string, end int) string {
	if end <= s.emitted {
		return ""
	}
	out := text[s.emitted:end]
	s.emitted = end
	return out
}

// InCall reports whether a call has started.
func (s *Streamer) InCall() bool { return s.inCall }

// Text returns the whole answer so far.
func (s *Streamer) Text() string { return s.all.String() }

// Finish returns the text not yet returned by Write and the calls; err is
// Parse's (the calls did not parse: all the text is content).
func (s *Streamer) Finish() (string, []Call, error) {
	text := s.all.String()
	content, calls, err := s.f.Parse(text, s.tools)
	if len(calls) == 0 {
		return text[s.emitted:], nil, err
	}
	// The returned text is a prefix of the content before the calls, less
	// whitespace Parse trims.
	done := strings.TrimSpace(text[:s.emitted])
	rest := strings.TrimPrefix(content, done)
	if s.emitted > 0 {
		rest = strings.TrimLeft(rest, " \t\r\n")
	}
	return rest, calls, nil
}

// partialSuffix returns the length of the longest suffix of text that is
// a proper prefix of marker.
func partialSuffix(text, marker string) int {
	for n := min(len(marker)-1, len(text)); n > 0; n-- {
		if strings.HasSuffix(text, marker[:n]) {
			return n
		}
	}
	return 0
}
