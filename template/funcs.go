package template

import (
	"errors"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/ardanlabs/jinja"
)

// raiseException is the template global raise_exception(message): it fails
// the render with a *RaiseError carrying str(message).
func raiseException(args []jinja.Value, kwargs map[string]jinja.Value) (jinja.Value, error) {
	msg, ok := kwargs["message"]
	if len(args) > 0 {
		msg, ok = args[0], true
	}
	if !ok {
		return jinja.Undefined(), errors.New("raise_exception() missing 1 required positional argument: 'message'")
	}
	return jinja.Undefined(), &RaiseError{Message: pyStr(msg)}
}

// strftimeNow returns the template global strftime_now(format) reading the
// given clock.
func strftimeNow(now func() time.Time) jinja.Value {
	return jinja.NewCallable("strftime_now", func(args []jinja.Value, kwargs map[string]jinja.Value) (jinja.Value, error) {
		f, ok := kwargs["format"]
		if len(args) > 0 {
			f, ok = args[0], true
		}
		if !ok || !f.IsString() {
			return jinja.Undefined(), errors.New("strftime_now(format): format must be a string")
		}
		return jinja.NewString(Strftime(now(), f.AsString())), nil
	})
}

var (
	shortDays   = [...]string{"Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"}
	longDays    = [...]string{"Sunday", "Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday"}
	shortMonths = [...]string{"Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"}
	longMonths  = [...]string{"January", "February", "March", "April", "May", "June", "July", "August", "September", "October", "November", "December"}
)

// Strftime formats t with a Python (C library, C locale) strftime format,
// as transformers' strftime_now does with datetime.now().strftime(format).
// It knows %a %A %b %B %c %C %d %D %e %F %G %g %h %H %I %j %m %M %n %p %r
// %R %S %t %T %u %U %V %w %W %x %X %y %Y %% and the glibc flag "-" (no
// padding, e.g. %-d). %z and %Z give "", as for the naive datetime that
// transformers formats (t's wall clock is used as is); other conversions are
// written unchanged, as glibc does.
func Strftime(t time.Time, format string) string {
	var b strings.Builder
	for i := 0; i < len(format); i++ {
		c := format[i]
		if c != '%' || i+1 >= len(format) {
			b.WriteByte(c)
			continue
		}
		start := i
		i++
		noPad := false
		if format[i] == '-' && i+1 < len(format) {
			noPad = true
			i++
		}
		num := func(n, width int) {
			s := strconv.Itoa(n)
			if !noPad {
				for len(s) < width {
					s = "0" + s
				}
			}
			b.WriteString(s)
		}
		switch format[i] {
		case 'a':
			b.WriteString(shortDays[t.Weekday()])
		case 'A':
			b.WriteString(longDays[t.Weekday()])
		case 'b', 'h':
			b.WriteString(shortMonths[t.Month()-1])
		case 'B':
			b.WriteString(longMonths[t.Month()-1])
		case 'c':
			b.WriteString(Strftime(t, "%a %b %e %H:%M:%S %Y"))
		case 'C':
			num(t.Year()/100, 2)
		case 'd':
			num(t.Day(), 2)
		case 'D':
			b.WriteString(Strftime(t, "%m/%d/%y"))
		case 'e':
			if noPad {
				num(t.Day(), 0)
			} else {
				fmt.Fprintf(&b, "%2d", t.Day())
			}
		case 'F':
			b.WriteString(Strftime(t, "%Y-%m-%d"))
		case 'G':
			y, _ := t.ISOWeek()
			num(y, 4)
		case 'g':
			y, _ := t.ISOWeek()
			num(y%100, 2)
		case 'H':
			num(t.Hour(), 2)
		case 'I':
			num((t.Hour()+11)%12+1, 2)
		case 'j':
			num(t.YearDay(), 3)
		case 'm':
			num(int(t.Month()), 2)
		case 'M':
			num(t.Minute(), 2)
		case 'n':
			b.WriteByte('\n')
		case 'p':
			if t.Hour() < 12 {
				b.WriteString("AM")
			} else {
				b.WriteString("PM")
			}
		case 'r':
			b.WriteString(Strftime(t, "%I:%M:%S %p"))
		case 'R':
			b.WriteString(Strftime(t, "%H:%M"))
		case 'S':
			num(t.Second(), 2)
		case 't':
			b.WriteByte('\t')
		case 'T':
			b.WriteString(Strftime(t, "%H:%M:%S"))
		case 'u':
			wd := int(t.Weekday())
			if wd == 0 {
				wd = 7
			}
			num(wd, 1)
		case 'U':
			num((t.YearDay()+6-int(t.Weekday()))/7, 2)
		case 'V':
			_, w := t.ISOWeek()
			num(w, 2)
		case 'w':
			num(int(t.Weekday()), 1)
		case 'W':
			num((t.YearDay()+6-(int(t.Weekday())+6)%7)/7, 2)
		case 'x':
			b.WriteString(Strftime(t, "%m/%d/%y"))
		case 'X':
			b.WriteString(Strftime(t, "%H:%M:%S"))
		case 'y':
			num(t.Year()%100, 2)
		case 'Y':
			num(t.Year(), 0)
		case 'z', 'Z':
			// Empty, as for Python's naive datetime.now().
		case '%':
			b.WriteByte('%')
		default:
			b.WriteString(format[start : i+1])
		}
	}
	return b.String()
}

// maxRange is jinja2's sandbox limit on range() (MAX_RANGE), which keeps a
// template from a model file from allocating without bound.
const maxRange = 100000

// safeRange is the template global range([start,] stop[, step]) as the
// jinja2 sandbox has it: at most maxRange items.
func safeRange(args []jinja.Value, _ map[string]jinja.Value) (jinja.Value, error) {
	var n [3]int64
	for i, a := range args {
		if i >= 3 || !a.IsInt() {
			return jinja.Undefined(), fmt.Errorf("range() takes 1 to 3 integer arguments, got %d", len(args))
		}
		n[i] = a.AsInt()
	}
	start, stop, step := int64(0), int64(0), int64(1)
	switch len(args) {
	case 1:
		stop = n[0]
	case 2:
		start, stop = n[0], n[1]
	case 3:
		start, stop, step = n[0], n[1], n[2]
	default:
		return jinja.Undefined(), fmt.Errorf("range expected at least 1 argument, got %d", len(args))
	}
	if step == 0 {
		return jinja.Undefined(), errors.New("range() arg 3 must not be zero")
	}
	var count int64
	switch {
	case step > 0 && start < stop:
		count = (stop-start-1)/step + 1
	case step < 0 && start > stop:
		count = (start-stop-1)/(-step) + 1
	}
	if count > maxRange {
		//lint:ignore ST1005 jinja2's own message, matched byte for byte
		return jinja.Undefined(), fmt.Errorf("Range too big. The sandbox blocks ranges larger than MAX_RANGE (%d).", maxRange)
	}
	items := make([]jinja.Value, count)
	for i := range items {
		items[i] = jinja.NewInt(start + int64(i)*step)
	}
	return jinja.NewList(items), nil
}

// printString prints the value of a {{ expression }} as jinja2 does: str()
// of the value, "" for an undefined one.
func printString(args []jinja.Value, _ map[string]jinja.Value) (jinja.Value, error) {
	if len(args) == 0 {
		return jinja.NewString(""), nil
	}
	if args[0].IsString() {
		return args[0], nil
	}
	return jinja.NewString(pyStr(args[0])), nil
}

// toString is the filter string: str() of the value.
func toString(args []jinja.Value, kwargs map[string]jinja.Value) (jinja.Value, error) {
	return printString(args, kwargs)
}

// trim is the filter trim(value, chars=None): str(value).strip(chars).
func trim(args []jinja.Value, kwargs map[string]jinja.Value) (jinja.Value, error) {
	if len(args) == 0 {
		return jinja.NewString(""), nil
	}
	s := pyStr(args[0])
	chars, ok := kwargs["chars"]
	if len(args) > 1 {
		chars, ok = args[1], true
	}
	if ok && !chars.IsNone() && !chars.IsUndefined() {
		return jinja.NewString(strings.Trim(s, pyStr(chars))), nil
	}
	return jinja.NewString(strings.TrimFunc(s, pyIsSpace)), nil
}

// pyIsSpace reports whether Python's str.isspace holds for r: Unicode
// White_Space plus the separators U+001C..U+001F.
func pyIsSpace(r rune) bool {
	return unicode.IsSpace(r) || (r >= 0x1c && r <= 0x1f)
}

// tojson is the template filter tojson with transformers' signature:
// tojson(x, ensure_ascii=False, indent=None, separators=None,
// sort_keys=False) = json.dumps(x, ...). Non-ASCII text is kept as is
// unless ensure_ascii is true; dict keys keep their order.
func tojson(args []jinja.Value, kwargs map[string]jinja.Value) (jinja.Value, error) {
	if len(args) == 0 {
		return jinja.Undefined(), errors.New("tojson: missing value")
	}
	var opt jsonOptions
	opt.itemSep, opt.keySep = ", ", ": "
	positional := []string{"ensure_ascii", "indent", "separators", "sort_keys"}
	get := func(i int) (jinja.Value, bool) {
		if len(args) > i+1 {
			return args[i+1], true
		}
		v, ok := kwargs[positional[i]]
		return v, ok
	}
	if v, ok := get(0); ok {
		opt.ensureASCII = v.IsTruthy()
	}
	if v, ok := get(1); ok && !v.IsNone() && !v.IsUndefined() {
		switch {
		case v.IsInt():
			opt.indent = strings.Repeat(" ", max(0, int(v.AsInt())))
		case v.IsString():
			opt.indent = v.AsString()
		default:
			return jinja.Undefined(), fmt.Errorf("tojson: indent must be an int or a string, not %s", pyRepr(v))
		}
		opt.pretty = true
		opt.itemSep = ","
	}
	if v, ok := get(2); ok && !v.IsNone() && !v.IsUndefined() {
		if !v.IsList() || v.AsList().Len() != 2 || !v.AsList().Items[0].IsString() || !v.AsList().Items[1].IsString() {
			return jinja.Undefined(), errors.New("tojson: separators must be a pair of strings")
		}
		opt.itemSep, opt.keySep = v.AsList().Items[0].AsString(), v.AsList().Items[1].AsString()
	}
	if v, ok := get(3); ok {
		opt.sortKeys = v.IsTruthy()
	}
	var b strings.Builder
	if err := writeJSON(&b, args[0], &opt, 0); err != nil {
		return jinja.Undefined(), err
	}
	return jinja.NewString(b.String()), nil
}

type jsonOptions struct {
	ensureASCII bool
	pretty      bool
	indent      string
	itemSep     string
	keySep      string
	sortKeys    bool
}

func (o *jsonOptions) newline(b *strings.Builder, depth int) {
	if !o.pretty {
		return
	}
	b.WriteByte('\n')
	for range depth {
		b.WriteString(o.indent)
	}
}

// writeJSON writes v as Python's json.dumps would.
func writeJSON(b *strings.Builder, v jinja.Value, o *jsonOptions, depth int) error {
	switch {
	case v.IsUndefined(), v.IsNone():
		b.WriteString("null")
	case v.IsBool():
		if v.AsBool() {
			b.WriteString("true")
		} else {
			b.WriteString("false")
		}
	case v.IsInt():
		b.WriteString(strconv.FormatInt(v.AsInt(), 10))
	case v.IsFloat():
		f := v.AsFloat()
		switch {
		case math.IsNaN(f):
			b.WriteString("NaN")
		case math.IsInf(f, 1):
			b.WriteString("Infinity")
		case math.IsInf(f, -1):
			b.WriteString("-Infinity")
		default:
			b.WriteString(pyFloat(f))
		}
	case v.IsString():
		writeJSONString(b, v.AsString(), o.ensureASCII)
	case v.IsList():
		items := v.AsList().Items
		if len(items) == 0 {
			b.WriteString("[]")
			return nil
		}
		b.WriteByte('[')
		for i, item := range items {
			if i > 0 {
				b.WriteString(o.itemSep)
			}
			o.newline(b, depth+1)
			if err := writeJSON(b, item, o, depth+1); err != nil {
				return err
			}
		}
		o.newline(b, depth)
		b.WriteByte(']')
	case v.IsDict():
		d := v.AsDict()
		keys := d.Keys
		if o.sortKeys {
			// Go compares strings bytewise, which for UTF-8 is code point
			// order, the order Python sorts str keys in.
			keys = d.OrderedKeys()
			slices.Sort(keys)
		}
		if len(keys) == 0 {
			b.WriteString("{}")
			return nil
		}
		b.WriteByte('{')
		for i, k := range keys {
			if i > 0 {
				b.WriteString(o.itemSep)
			}
			o.newline(b, depth+1)
			writeJSONString(b, k, o.ensureASCII)
			b.WriteString(o.keySep)
			if err := writeJSON(b, d.Data[k], o, depth+1); err != nil {
				return err
			}
		}
		o.newline(b, depth)
		b.WriteByte('}')
	default:
		return fmt.Errorf("tojson: object of type %s is not JSON serializable", pyTypeName(v))
	}
	return nil
}

const hexDigits = "0123456789abcdef"

// writeJSONString writes s quoted as Python's json.dumps does: ", \ and
// control characters escaped (\n \r \t \b \f, others as \u00XX); with
// ensureASCII every non-ASCII character as \uXXXX (surrogate pairs above
// U+FFFF), else non-ASCII text kept unchanged (U+2028 and U+2029 included).
func writeJSONString(b *strings.Builder, s string, ensureASCII bool) {
	b.WriteByte('"')
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			switch c {
			case '"':
				b.WriteString(`\"`)
			case '\\':
				b.WriteString(`\\`)
			case '\n':
				b.WriteString(`\n`)
			case '\r':
				b.WriteString(`\r`)
			case '\t':
				b.WriteString(`\t`)
			case '\b':
				b.WriteString(`\b`)
			case '\f':
				b.WriteString(`\f`)
			default:
				if c < 0x20 || (c == 0x7f && ensureASCII) {
					b.WriteString(`\u00`)
					b.WriteByte(hexDigits[c>>4])
					b.WriteByte(hexDigits[c&0xf])
				} else {
					b.WriteByte(c)
				}
			}
			i++
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if !ensureASCII {
			b.WriteString(s[i : i+size])
			i += size
			continue
		}
		if r >= 0x10000 {
			r -= 0x10000
			writeU16(b, 0xd800+(r>>10))
			writeU16(b, 0xdc00+(r&0x3ff))
		} else {
			writeU16(b, r)
		}
		i += size
	}
	b.WriteByte('"')
}

func writeU16(b *strings.Builder, r rune) {
	b.WriteString(`\u`)
	b.WriteByte(hexDigits[r>>12&0xf])
	b.WriteByte(hexDigits[r>>8&0xf])
	b.WriteByte(hexDigits[r>>4&0xf])
	b.WriteByte(hexDigits[r&0xf])
}

// pyFloat formats f as Python's repr(float) does: the shortest digits that
// round-trip, in fixed notation when the decimal exponent is in [-4, 16),
// else scientific with at least two exponent digits; "1.0", "1e-05",
// "1e+16", "1.5e+300".
func pyFloat(f float64) string {
	if math.IsInf(f, 1) {
		return "inf"
	}
	if math.IsInf(f, -1) {
		return "-inf"
	}
	if math.IsNaN(f) {
		return "nan"
	}
	s := strconv.FormatFloat(f, 'e', -1, 64) // e.g. "-1.2345e+06"
	mant, expStr, _ := strings.Cut(s, "e")
	exp, _ := strconv.Atoi(expStr)
	neg := strings.HasPrefix(mant, "-")
	mant = strings.TrimPrefix(mant, "-")
	digits := strings.Replace(mant, ".", "", 1)
	var out string
	if exp >= -4 && exp < 16 {
		if exp >= 0 {
			if len(digits) <= exp+1 {
				out = digits + strings.Repeat("0", exp+1-len(digits)) + ".0"
			} else {
				out = digits[:exp+1] + "." + digits[exp+1:]
			}
		} else {
			out = "0." + strings.Repeat("0", -exp-1) + digits
		}
	} else {
		m := digits[:1]
		if len(digits) > 1 {
			m += "." + digits[1:]
		}
		sign := "+"
		if exp < 0 {
			sign, exp = "-", -exp
		}
		e := strconv.Itoa(exp)
		if len(e) < 2 {
			e = "0" + e
		}
		out = m + "e" + sign + e
	}
	if neg {
		out = "-" + out
	}
	return out
}

// pyStr returns Python's str() of a template value.
func pyStr(v jinja.Value) string {
	switch {
	case v.IsUndefined():
		return ""
	case v.IsString():
		return v.AsString()
	}
	return pyRepr(v)
}

// pyRepr returns Python's repr() of a template value.
func pyRepr(v jinja.Value) string {
	switch {
	case v.IsUndefined():
		return "Undefined"
	case v.IsNone():
		return "None"
	case v.IsBool():
		if v.AsBool() {
			return "True"
		}
		return "False"
	case v.IsInt():
		return strconv.FormatInt(v.AsInt(), 10)
	case v.IsFloat():
		return pyFloat(v.AsFloat())
	case v.IsString():
		return pyStrRepr(v.AsString())
	case v.IsList():
		var b strings.Builder
		b.WriteByte('[')
		for i, item := range v.AsList().Items {
			if i > 0 {
				b.WriteString(", ")
			}
			b.WriteString(pyRepr(item))
		}
		b.WriteByte(']')
		return b.String()
	case v.IsDict():
		d := v.AsDict()
		var b strings.Builder
		b.WriteByte('{')
		for i, k := range d.Keys {
			if i > 0 {
				b.WriteString(", ")
			}
			b.WriteString(pyStrRepr(k))
			b.WriteString(": ")
			b.WriteString(pyRepr(d.Data[k]))
		}
		b.WriteByte('}')
		return b.String()
	}
	return "<function>"
}

// pyStrRepr quotes s as Python's repr(str) does: characters that are not
// printable (str.isprintable: control, format, surrogate, private-use,
// unassigned, separators other than " ") are escaped as \xhh, \uhhhh or
// \Uhhhhhhhh; Go's unicode.IsPrint is the same set.
func pyStrRepr(s string) string {
	quote := byte('\'')
	if strings.IndexByte(s, '\'') >= 0 && strings.IndexByte(s, '"') < 0 {
		quote = '"'
	}
	var b strings.Builder
	b.WriteByte(quote)
	for _, r := range s {
		switch {
		case r == rune(quote) || r == '\\':
			b.WriteByte('\\')
			b.WriteRune(r)
		case r == '\n':
			b.WriteString(`\n`)
		case r == '\r':
			b.WriteString(`\r`)
		case r == '\t':
			b.WriteString(`\t`)
		case r < 0x100 && !unicode.IsPrint(r):
			fmt.Fprintf(&b, `\x%02x`, r)
		case r < 0x10000 && !unicode.IsPrint(r):
			fmt.Fprintf(&b, `\u%04x`, r)
		case !unicode.IsPrint(r):
			fmt.Fprintf(&b, `\U%08x`, r)
		default:
			b.WriteRune(r)
		}
	}
	b.WriteByte(quote)
	return b.String()
}

func pyTypeName(v jinja.Value) string {
	if v.IsCallable() {
		return "function"
	}
	return "unknown"
}
