package template

import (
	"strconv"
	"strings"
	"unicode/utf8"
)

// Names under which our Python-compatible functions are registered as
// render variables. prepare renames the template's tojson, trim and string
// filters to them, because the engine looks its own filters up before the
// render's variables and has no API to replace one; and it pipes every
// {{ expression }} through printFilter, because the engine prints values
// its own way (None as "", 1.0 as "1", strings in lists always in single
// quotes).
const (
	tojsonFilter = "__vlm_tojson"
	trimFilter   = "__vlm_trim"
	stringFilter = "__vlm_string"
	printFilter  = "__vlm_print"
	enterMacro   = "__vlm_enter"
	leaveMacro   = "__vlm_leave"
)

// renamedFilters maps a filter name to the name prepare gives it.
var renamedFilters = map[string]string{
	"tojson": tojsonFilter,
	"trim":   trimFilter,
	"string": stringFilter,
}

// prepare rewrites a chat template's source so that the engine reads it the
// way jinja2 does under transformers' settings:
//
//   - newlines are normalised to "\n" (jinja2's lexer splits the source on
//     \r\n, \r and \n and joins it with \n);
//   - one trailing newline is dropped (keep_trailing_newline=False);
//   - string literals inside tags are decoded like Python's unicode_escape:
//     backslash-newline is a line continuation and disappears, and the
//     escapes the engine does not know (\r, \a, \b, \f, \v, octal, \x, \u,
//     \U) become the characters they stand for; unknown escapes such as \s
//     stay as they are;
//   - number literals jinja2 reads and the engine does not (1e-5, 1_000)
//     are rewritten;
//   - the tojson, trim and string filters are renamed to our
//     implementations, and {{ expressions }} are printed by ours (Python's
//     str());
//   - the "+" that turns lstrip_blocks/trim_blocks off for one tag ({%+,
//     +%}) is dropped, since the engine rejects it: such a tag is trimmed
//     like the others.
//
// Text outside tags, comments and {% raw %} bodies is left alone.
func prepare(src string) string {
	if strings.IndexByte(src, '\r') >= 0 {
		src = strings.ReplaceAll(src, "\r\n", "\n")
		src = strings.ReplaceAll(src, "\r", "\n")
	}
	src = strings.TrimSuffix(src, "\n")

	var b strings.Builder
	b.Grow(len(src) + 64)
	i := 0
	for i < len(src) {
		j := strings.IndexByte(src[i:], '{')
		if j < 0 || i+j+1 >= len(src) {
			b.WriteString(src[i:])
			break
		}
		j += i
		b.WriteString(src[i:j])
		switch src[j+1] {
		case '#':
			end := strings.Index(src[j+2:], "#}")
			if end < 0 {
				b.WriteString(src[j:])
				return b.String()
			}
			end += j + 2 + 2
			b.WriteString(src[j:end])
			i = end
		case '{', '%':
			closer := "}}"
			if src[j+1] == '%' {
				closer = "%}"
			}
			end, body := rewriteTag(src, j+2, closer)
			b.WriteString(src[j : j+2])
			if end > len(src) {
				// Not closed: the engine reports the error.
				b.WriteString(body)
				return b.String()
			}
			name := ""
			if src[j+1] == '%' {
				name = stmtName(body)
			}
			if name == "endmacro" {
				// Count the macro's end: a tag of ours just before
				// {% endmacro %}, taking over its left trim, so the
				// output is unchanged.
				lead := ""
				if strings.HasPrefix(body, "-") {
					lead = "-"
				}
				b.WriteString(lead + " set __vlm_depth = " + leaveMacro + "() %}{%")
			}
			if src[j+1] == '{' {
				b.WriteString(wrapOutput(body))
			} else {
				b.WriteString(dropPlus(body))
			}
			b.WriteString(closer)
			if name == "macro" {
				// Count the macro's calls (recursion depth, time): a tag
				// of ours right after {% macro %}, taking over its right
				// trim; trim_blocks then acts on it as on the macro tag.
				trim := strings.HasSuffix(strings.TrimRight(body, " \t\n"), "-")
				if trim {
					b.WriteString("{%- set __vlm_depth = " + enterMacro + "() -%}")
				} else {
					b.WriteString("{% set __vlm_depth = " + enterMacro + "() %}")
				}
			}
			i = end
			if src[j+1] == '%' && stmtName(body) == "raw" {
				// Copy the raw body verbatim up to its {% endraw %}.
				k := findEndraw(src, i)
				b.WriteString(src[i:k])
				i = k
			}
		default:
			b.WriteByte('{')
			i = j + 1
		}
	}
	return b.String()
}

// rewriteTag finds the end of the tag whose inside starts at src[start]:
// the closer outside string literals and brackets (jinja2's lexer balances
// brackets, so "{{ {'a': {'b': 1}} }}" is one tag). It returns the index
// just past the closer, len(src)+1 when the tag is not closed, and the
// rewritten inside.
func rewriteTag(src string, start int, closer string) (int, string) {
	depth := 0
	for i := start; i < len(src); {
		c := src[i]
		switch {
		case c == '\'' || c == '"':
			i = skipLiteral(src, i)
			continue
		case depth == 0 && strings.HasPrefix(src[i:], closer):
			return i + len(closer), rewriteExpr(src[start:i])
		case c == '(' || c == '[' || c == '{':
			depth++
		case (c == ')' || c == ']' || c == '}') && depth > 0:
			depth--
		}
		i++
	}
	return len(src) + 1, src[start:]
}

// rewriteExpr rewrites the inside of a tag: string literals decoded as
// jinja2 decodes them, number literals the engine misreads, the filters we
// replace renamed, dict(k=v, ...) calls turned into dict literals (the
// engine's dict() loses the order of its keyword arguments, Python's keeps
// it), and "}}" inside the expression split into "} }" so that the engine,
// which ends a {{ tag at the first "}}", reads nested dict literals.
func rewriteExpr(s string) string {
	var b strings.Builder
	b.Grow(len(s) + 16)
	prevSignificant := byte(0) // last non-space byte outside literals
	last := byte(0)            // last byte written
	write := func(str string) {
		if str != "" {
			if last == '}' && str[0] == '}' {
				b.WriteByte(' ')
			}
			b.WriteString(str)
			last = str[len(str)-1]
		}
	}
	for i := 0; i < len(s); {
		c := s[i]
		switch {
		case c == '\'' || c == '"':
			end, lit := rewriteLiteral(s, i)
			write(lit)
			i = end
			prevSignificant = c
		case c >= '0' && c <= '9':
			end, num := rewriteNumber(s, i)
			write(num)
			i = end
			prevSignificant = '0'
		case isIdentStart(c):
			k := i + 1
			for k < len(s) && isIdentPart(s[k]) {
				k++
			}
			word := s[i:k]
			if prevSignificant == '|' {
				if renamed, ok := renamedFilters[word]; ok {
					word = renamed
				}
			}
			if (word == "selectattr" || word == "rejectattr") && prevSignificant == '|' {
				if call, end, ok := truthyAttrCall(s, k); ok {
					write(word + call)
					i = end
					prevSignificant = ')'
					continue
				}
			}
			if word == "dict" && prevSignificant != '.' {
				if lit, end, ok := dictCallLiteral(s, k); ok {
					write(lit)
					i = end
					prevSignificant = '}'
					continue
				}
			}
			write(word)
			i = k
			prevSignificant = 'a'
		default:
			write(s[i : i+1])
			if c != ' ' && c != '\t' && c != '\n' {
				prevSignificant = c
			}
			i++
		}
	}
	return b.String()
}

// callArgs finds the argument list whose "(" is the next non-space byte at
// or after s[i] and returns its arguments and the index of its ")"; ok is
// false when there is no such list or it is unbalanced.
func callArgs(s string, i int) (args []string, end int, ok bool) {
	for i < len(s) && (s[i] == ' ' || s[i] == '\t' || s[i] == '\n') {
		i++
	}
	if i >= len(s) || s[i] != '(' {
		return nil, 0, false
	}
	end = matchParen(s, i)
	if end < 0 {
		return nil, 0, false
	}
	return splitArgs(s[i+1 : end]), end, true
}

// dictCallLiteral turns the call dict(k1=v1, k2=v2) whose "(" is the next
// non-space byte at or after s[i] into the literal {'k1': v1, 'k2': v2}.
// It returns the literal, the index just past the call's ")" and true; or
// false for any other call (positional arguments, no call, unbalanced).
func dictCallLiteral(s string, i int) (string, int, bool) {
	args, end, ok := callArgs(s, i)
	if !ok {
		return "", 0, false
	}
	var b strings.Builder
	b.WriteByte('{')
	for n, arg := range args {
		name, expr, ok := keywordArg(arg)
		if !ok {
			return "", 0, false
		}
		if n > 0 {
			b.WriteString(", ")
		}
		b.WriteString("'" + name + "': (" + rewriteExpr(expr) + ")")
	}
	b.WriteByte('}')
	return b.String(), end + 1, true
}

// truthyAttrCall handles selectattr(attr) and rejectattr(attr) with one
// argument, which the engine cannot take (it slices past its arguments and
// panics): the argument list at or after s[i] becomes (attr, "truthy"),
// the engine's name for the test-less form. It returns the new argument
// list, the index just past the ")" and true, or false when the call has
// another number of arguments.
func truthyAttrCall(s string, i int) (string, int, bool) {
	args, end, ok := callArgs(s, i)
	if !ok {
		return "", 0, false
	}
	if len(args) != 1 {
		return "", 0, false
	}
	if _, _, kw := keywordArg(args[0]); kw {
		return "", 0, false
	}
	return "(" + rewriteExpr(args[0]) + ", 'truthy')", end + 1, true
}

// skipLiteral returns the index just past the string literal opening at
// s[i], or len(s) when it is not closed.
func skipLiteral(s string, i int) int {
	quote := s[i]
	for i++; i < len(s); i++ {
		switch s[i] {
		case '\\':
			i++
		case quote:
			return i + 1
		}
	}
	return len(s)
}

// matchParen returns the index of the ")" closing the "(" at s[i], or -1.
func matchParen(s string, i int) int {
	depth := 0
	for i < len(s) {
		switch c := s[i]; c {
		case '\'', '"':
			i = skipLiteral(s, i)
			continue
		case '(', '[', '{':
			depth++
		case ')', ']', '}':
			depth--
			if depth == 0 {
				if c != ')' {
					return -1
				}
				return i
			}
		}
		i++
	}
	return -1
}

// splitArgs splits an argument list at its top-level commas, dropping a
// trailing empty argument.
func splitArgs(s string) []string {
	var args []string
	depth, from := 0, 0
	for i := 0; i < len(s); {
		switch s[i] {
		case '\'', '"':
			i = skipLiteral(s, i)
			continue
		case '(', '[', '{':
			depth++
		case ')', ']', '}':
			depth--
		case ',':
			if depth == 0 {
				args = append(args, s[from:i])
				from = i + 1
			}
		}
		i++
	}
	if rest := s[from:]; strings.TrimSpace(rest) != "" {
		args = append(args, rest)
	}
	return args
}

// keywordArg splits "name = expr" (not "name == expr").
func keywordArg(arg string) (string, string, bool) {
	arg = strings.TrimLeft(arg, " \t\n")
	k := 0
	for k < len(arg) && (isIdentPart(arg[k])) {
		k++
	}
	if k == 0 || !isIdentStart(arg[0]) {
		return "", "", false
	}
	name := arg[:k]
	rest := strings.TrimLeft(arg[k:], " \t\n")
	if !strings.HasPrefix(rest, "=") || strings.HasPrefix(rest, "==") {
		return "", "", false
	}
	expr := rest[1:]
	if strings.TrimSpace(expr) == "" {
		return "", "", false
	}
	return name, expr, true
}

// wrapOutput pipes the expression inside a {{ ... }} tag through
// printFilter, keeping its whitespace-control markers in place.
func wrapOutput(body string) string {
	lead, trail := "", ""
	if strings.HasPrefix(body, "-") {
		lead, body = "-", body[1:]
	}
	if strings.HasSuffix(body, "-") {
		trail, body = "-", body[:len(body)-1]
	}
	if strings.TrimSpace(body) == "" {
		return lead + body + trail
	}
	return lead + " (" + body + ")|" + printFilter + " " + trail
}

// dropPlus removes the "+" markers from the inside of a {% ... %} tag.
func dropPlus(body string) string {
	body = strings.TrimPrefix(body, "+")
	return strings.TrimSuffix(body, "+")
}

// rewriteNumber rewrites the number literal at src[start] into a form the
// engine reads as jinja2 does: underscores between digits are dropped
// (1_000) and a float with an exponent but no fraction gets one (1e-5 is
// read by the engine as 1 followed by garbage; 1.0e-5 is read right). It
// returns the index just past the literal and its rewritten text.
func rewriteNumber(src string, start int) (int, string) {
	i := start
	digits := func() {
		for i < len(src) && (src[i] >= '0' && src[i] <= '9' || src[i] == '_' && i+1 < len(src) && src[i+1] >= '0' && src[i+1] <= '9') {
			i++
		}
	}
	digits()
	fraction := false
	if i+1 < len(src) && src[i] == '.' && src[i+1] >= '0' && src[i+1] <= '9' {
		fraction = true
		i++
		digits()
	}
	mantEnd := i
	if i < len(src) && (src[i] == 'e' || src[i] == 'E') {
		k := i + 1
		if k < len(src) && (src[k] == '+' || src[k] == '-') {
			k++
		}
		if k < len(src) && src[k] >= '0' && src[k] <= '9' {
			i = k
			digits()
		}
	}
	mant := strings.ReplaceAll(src[start:mantEnd], "_", "")
	exp := strings.ReplaceAll(src[mantEnd:i], "_", "")
	if exp != "" && !fraction {
		mant += ".0"
	}
	return i, mant + exp
}

// rewriteLiteral decodes the string literal that opens at src[start] into
// a literal the engine reads as jinja2 would. It returns the index just
// past the closing quote and the rewritten literal (quotes included).
func rewriteLiteral(src string, start int) (int, string) {
	quote := src[start]
	var b strings.Builder
	b.WriteByte(quote)
	i := start + 1
	for i < len(src) && src[i] != quote {
		c := src[i]
		if c != '\\' || i+1 >= len(src) {
			b.WriteByte(c)
			i++
			continue
		}
		n := src[i+1]
		switch n {
		case '\n': // line continuation
			i += 2
		case '\\', '\'', '"', 'n', 't':
			// The engine decodes these itself.
			b.WriteByte('\\')
			b.WriteByte(n)
			i += 2
		case 'r':
			b.WriteByte('\r')
			i += 2
		case 'a':
			b.WriteByte('\a')
			i += 2
		case 'b':
			b.WriteByte('\b')
			i += 2
		case 'f':
			b.WriteByte('\f')
			i += 2
		case 'v':
			b.WriteByte('\v')
			i += 2
		case '0', '1', '2', '3', '4', '5', '6', '7':
			k := i + 1
			for k < len(src) && k < i+4 && src[k] >= '0' && src[k] <= '7' {
				k++
			}
			r, _ := strconv.ParseUint(src[i+1:k], 8, 32)
			writeDecoded(&b, rune(r))
			i = k
		case 'x', 'u', 'U':
			width := map[byte]int{'x': 2, 'u': 4, 'U': 8}[n]
			hex := ""
			if i+2+width <= len(src) {
				hex = src[i+2 : i+2+width]
			}
			r, err := strconv.ParseUint(hex, 16, 32)
			if err != nil || len(hex) != width || r > utf8.MaxRune {
				// Python refuses to compile such a literal; keep it as written.
				b.WriteByte('\\')
				b.WriteByte(n)
				i += 2
				continue
			}
			writeDecoded(&b, rune(r))
			i += 2 + width
		default:
			if n >= utf8.RuneSelf {
				// jinja2 encodes the literal with backslashreplace before
				// decoding it, so "\é" reads as a backslash followed by "xe9".
				r, size := utf8.DecodeRuneInString(src[i+1:])
				b.WriteString(`\\`)
				switch {
				case r < 0x100:
					b.WriteString("x" + leftPad(strconv.FormatInt(int64(r), 16), 2))
				case r < 0x10000:
					b.WriteString("u" + leftPad(strconv.FormatInt(int64(r), 16), 4))
				default:
					b.WriteString("U" + leftPad(strconv.FormatInt(int64(r), 16), 8))
				}
				i += 1 + size
				continue
			}
			// Unknown escape (e.g. \s): Python keeps the backslash.
			b.WriteByte('\\')
			b.WriteByte(n)
			i += 2
		}
	}
	if i < len(src) {
		b.WriteByte(quote)
		i++
	}
	return i, b.String()
}

// writeDecoded writes the character r into a literal being rewritten,
// escaping the few characters the engine's own escapes must express.
func writeDecoded(b *strings.Builder, r rune) {
	switch r {
	case '\\':
		b.WriteString(`\\`)
	case '\'':
		b.WriteString(`\'`)
	case '"':
		b.WriteString(`\"`)
	default:
		b.WriteRune(r)
	}
}

func leftPad(s string, n int) string {
	for len(s) < n {
		s = "0" + s
	}
	return s
}

func isIdentStart(c byte) bool {
	return c == '_' || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')
}

func isIdentPart(c byte) bool { return isIdentStart(c) || (c >= '0' && c <= '9') }

// stmtName returns the first word of a statement tag's inside, without a
// leading whitespace-control "-" or "+".
func stmtName(body string) string {
	body = strings.TrimLeft(body, "-+ \t\n")
	k := 0
	for k < len(body) && isIdentPart(body[k]) {
		k++
	}
	return body[:k]
}

// findEndraw returns the index of the {% endraw %} tag at or after i, or
// len(src) when there is none.
func findEndraw(src string, i int) int {
	for {
		j := strings.Index(src[i:], "{%")
		if j < 0 {
			return len(src)
		}
		j += i
		end := strings.Index(src[j+2:], "%}")
		if end < 0 {
			return len(src)
		}
		if stmtName(src[j+2:j+2+end]) == "endraw" {
			return j
		}
		i = j + 2
	}
}
