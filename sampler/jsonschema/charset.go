package jsonschema

import (
	"fmt"
	"sort"
	"strings"
)

// span is an inclusive range of code points.
type span struct{ lo, hi rune }

// runeSet is a set of code points as sorted, disjoint, non-adjacent spans.
type runeSet []span

func setOf(spans ...span) runeSet {
	s := append(runeSet(nil), spans...)
	return s.norm()
}

func (s runeSet) norm() runeSet {
	if len(s) == 0 {
		return nil
	}
	sort.Slice(s, func(i, j int) bool { return s[i].lo < s[j].lo })
	out := runeSet{s[0]}
	for _, x := range s[1:] {
		last := &out[len(out)-1]
		if x.lo <= last.hi+1 {
			last.hi = max(last.hi, x.hi)
		} else {
			out = append(out, x)
		}
	}
	return out
}

func (s runeSet) union(t runeSet) runeSet {
	return append(append(runeSet(nil), s...), t...).norm()
}

// minus is s without t.
func (s runeSet) minus(t runeSet) runeSet { return s.intersect(t.complement()) }

func (s runeSet) complement() runeSet {
	var out runeSet
	next := rune(0)
	for _, x := range s {
		if x.lo > next {
			out = append(out, span{next, x.lo - 1})
		}
		next = x.hi + 1
	}
	if next <= maxRune {
		out = append(out, span{next, maxRune})
	}
	return out
}

func (s runeSet) intersect(t runeSet) runeSet {
	var out runeSet
	i, j := 0, 0
	for i < len(s) && j < len(t) {
		lo, hi := max(s[i].lo, t[j].lo), min(s[i].hi, t[j].hi)
		if lo <= hi {
			out = append(out, span{lo, hi})
		}
		if s[i].hi < t[j].hi {
			i++
		} else {
			j++
		}
	}
	return out
}

func (s runeSet) contains(r rune) bool {
	for _, x := range s {
		if r >= x.lo && r <= x.hi {
			return true
		}
	}
	return false
}

func (s runeSet) empty() bool { return len(s) == 0 }

const maxRune = 0x10FFFF

var (
	surrogates = setOf(span{0xD800, 0xDFFF})
	// allChars: every code point a valid UTF-8 string can hold.
	allChars = setOf(span{0, maxRune}).minus(surrogates)
	// bmpChars: those that are one UTF-16 code unit (so that a length
	// counted in code points and one counted in UTF-16 units agree).
	bmpChars = setOf(span{0, 0xFFFF}).minus(surrogates)
	controls = setOf(span{0, 0x1F})
	// rawChars: characters a JSON string holds as themselves.
	rawChars = allChars.minus(controls).minus(setOf(span{'"', '"'}, span{'\\', '\\'}))
)

// classItem writes code point r for a GBNF character class.
func classItem(r rune) string {
	switch {
	case r >= '0' && r <= '9', r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z':
		return string(r)
	case r < 0x100:
		return fmt.Sprintf(`\x%02X`, r)
	case r < 0x10000:
		return fmt.Sprintf(`\u%04X`, r)
	}
	return fmt.Sprintf(`\U%08X`, r)
}

// class is the GBNF character class of a non-empty set.
func (s runeSet) class() string {
	var b strings.Builder
	b.WriteByte('[')
	for _, x := range s {
		b.WriteString(classItem(x.lo))
		if x.hi > x.lo {
			if x.hi > x.lo+1 {
				b.WriteByte('-')
			}
			b.WriteString(classItem(x.hi))
		}
	}
	b.WriteByte(']')
	return b.String()
}

// shortEscapes are the two-character escapes JSON has for characters that
// must be escaped; the others are written \u00XX.
var shortEscapes = map[rune]string{'"': `\"`, '\\': `\\`, '\b': `\b`, '\f': `\f`, '\n': `\n`, '\r': `\r`, '\t': `\t`}

// jsonChars is the GBNF expression for one character of s as it appears
// inside a JSON string: raw where JSON allows it, else escaped (one
// spelling per character). "" when s is empty.
func jsonChars(s runeSet) string {
	var alts []string
	if raw := s.intersect(rawChars); !raw.empty() {
		alts = append(alts, raw.class())
	}
	var long [2][]byte // hex digits of \u000X and \u001X escapes
	for _, x := range s.intersect(controls.union(setOf(span{'"', '"'}, span{'\\', '\\'}))) {
		for r := x.lo; r <= x.hi; r++ {
			if esc, ok := shortEscapes[r]; ok {
				alts = append(alts, gbnfString(esc))
			} else {
				long[r>>4] = append(long[r>>4], "0123456789abcdef"[r&15])
			}
		}
	}
	for hi, digits := range long {
		switch len(digits) {
		case 0:
		case 1:
			alts = append(alts, fmt.Sprintf(`"\\u00%d%c"`, hi, digits[0]))
		default:
			alts = append(alts, fmt.Sprintf(`"\\u00%d" [%s]`, hi, digits))
		}
	}
	return alt(alts)
}

// Rules for strings' characters: every character is valid UTF-8 (no
// surrogates, nothing above U+10FFFF), escapes included (\u escapes never
// name a surrogate).
const (
	hexNonSurrogate = `([0-9a-cA-Ce-fE-F] [0-9a-fA-F]{3} | [dD] [0-7] [0-9a-fA-F]{2})`
	escapeRule      = `[\\] (["\\/bfnrt] | "u" ` + hexNonSurrogate + `)`
)
