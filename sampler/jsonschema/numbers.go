package jsonschema

import (
	"encoding/json"
	"fmt"
	"math/big"
	"strconv"
	"strings"
)

// maxDigits is how many digits a number the grammar writes has at most
// (integer and fraction digits together). Decimals of at most 15
// significant digits survive a trip through float64 and keep their order,
// so a client that compares them as float64 (JavaScript, zod) agrees with
// one that compares them exactly, and with the grammar. Bounds have to be
// such numbers too.
const maxDigits = 15

// limit is one side of a numeric range.
type limit struct {
	v    *big.Rat // nil: unbounded
	excl bool
}

// numRange is what minimum, maximum, exclusiveMinimum and exclusiveMaximum
// say together.
type numRange struct{ lo, hi limit }

func (r numRange) bounded() bool { return r.lo.v != nil || r.hi.v != nil }

// number reads a JSON number keyword's value.
func number(v any) (*big.Rat, string, bool) {
	n, ok := v.(json.Number)
	if !ok {
		return nil, "", false
	}
	r, ok := new(big.Rat).SetString(n.String())
	return r, n.String(), ok
}

// significantDigits counts the significant digits of a JSON number literal.
func significantDigits(lit string) int {
	lit = strings.TrimPrefix(lit, "-")
	if i := strings.IndexAny(lit, "eE"); i >= 0 {
		lit = lit[:i]
	}
	lit = strings.Replace(lit, ".", "", 1)
	lit = strings.TrimLeft(lit, "0")
	lit = strings.TrimRight(lit, "0")
	return len(lit)
}

// readRange reads the bounds of schema s (draft 4's boolean exclusive
// keywords included) and checks that they are numbers of at most
// maxDigits significant digits.
func readRange(s *obj, path string) (numRange, error) {
	var r numRange
	tighten := func(l *limit, v *big.Rat, excl bool, lower bool) {
		if l.v == nil {
			*l = limit{v, excl}
			return
		}
		c := v.Cmp(l.v)
		if (lower && c > 0) || (!lower && c < 0) || (c == 0 && excl) {
			*l = limit{v, excl}
		}
	}
	for _, kw := range []string{"minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum"} {
		raw, ok := s.get(kw)
		if !ok {
			continue
		}
		if _, isBool := raw.(bool); isBool && strings.HasPrefix(kw, "exclusive") {
			continue // draft 4: read with minimum and maximum below
		}
		v, lit, ok := number(raw)
		if !ok {
			reason := "must be a number"
			if _, isNum := raw.(json.Number); isNum {
				reason = "is out of range"
			}
			return r, &Error{Path: path, Keyword: kw, Reason: reason}
		}
		// A bound at or beyond ±10^15 lies outside what the grammar writes
		// (it clamps, or refuses when nothing is left): its digits do not
		// matter. zod's int() writes ±(2^53−1).
		if significantDigits(lit) > maxDigits && new(big.Rat).Abs(v).Cmp(capPlusOne) < 0 {
			return r, &Error{Path: path, Keyword: kw, Reason: fmt.Sprintf("%s has more than %d significant digits, which clients comparing float64 values cannot hold exactly", lit, maxDigits)}
		}
		switch kw {
		case "minimum":
			excl, _ := s.m["exclusiveMinimum"].(bool)
			tighten(&r.lo, v, excl, true)
		case "maximum":
			excl, _ := s.m["exclusiveMaximum"].(bool)
			tighten(&r.hi, v, excl, false)
		case "exclusiveMinimum":
			tighten(&r.lo, v, true, true)
		case "exclusiveMaximum":
			tighten(&r.hi, v, true, false)
		}
	}
	return r, nil
}

var (
	bigOne = big.NewInt(1)
	// capInt is the largest integer of maxDigits digits.
	capInt = new(big.Int).Sub(new(big.Int).Exp(big.NewInt(10), big.NewInt(maxDigits), nil), bigOne)
	// capPlusOne is 10^maxDigits.
	capPlusOne = new(big.Rat).SetInt(new(big.Int).Exp(big.NewInt(10), big.NewInt(maxDigits), nil))
)

func ratFloor(r *big.Rat) *big.Int {
	q := new(big.Int).Quo(r.Num(), r.Denom()) // truncates toward zero
	if r.Sign() < 0 && !r.IsInt() {
		q.Sub(q, bigOne)
	}
	return q
}

func ratCeil(r *big.Rat) *big.Int {
	q := ratFloor(r)
	if !r.IsInt() {
		q.Add(q, bigOne)
	}
	return q
}

// integerGrammar is the GBNF expression for the integers of r, written
// without leading zeros, without "-0", and at most maxDigits digits long.
func integerGrammar(r numRange, path string) (string, error) {
	lo := new(big.Int).Neg(capInt)
	hi := new(big.Int).Set(capInt)
	kwLo, kwHi := "minimum", "maximum"
	if r.lo.v != nil {
		if r.lo.excl {
			kwLo = "exclusiveMinimum"
			lo = ratFloor(r.lo.v)
			lo.Add(lo, bigOne)
		} else {
			lo = ratCeil(r.lo.v)
		}
		if lo.Cmp(capInt) > 0 {
			return "", &Error{Path: path, Keyword: kwLo, Reason: fmt.Sprintf("integers above %d are not written (they lose precision as float64)", capInt)}
		}
		if lo.CmpAbs(capInt) > 0 {
			lo.Neg(capInt) // the grammar writes no more digits than maxDigits
		}
	}
	if r.hi.v != nil {
		if r.hi.excl {
			kwHi = "exclusiveMaximum"
			hi = ratCeil(r.hi.v)
			hi.Sub(hi, bigOne)
		} else {
			hi = ratFloor(r.hi.v)
		}
		if new(big.Int).Neg(hi).Cmp(capInt) > 0 {
			return "", &Error{Path: path, Keyword: kwHi, Reason: fmt.Sprintf("integers below -%d are not written (they lose precision as float64)", capInt)}
		}
		if hi.Cmp(capInt) > 0 {
			hi.Set(capInt)
		}
	}
	if lo.Cmp(hi) > 0 {
		return "", &Error{Path: path, Keyword: kwHi, Reason: "no integer lies within the bounds", none: true}
	}
	var alts []string
	if lo.Sign() < 0 { // negative part: "-" and a magnitude in [max(1, -hi), -lo]
		mlo := big.NewInt(1)
		if hi.Sign() < 0 {
			mlo.Neg(hi)
		}
		alts = append(alts, `"-" `+group(uintRange(mlo, new(big.Int).Neg(lo))))
	}
	if hi.Sign() >= 0 {
		nlo := new(big.Int)
		if lo.Sign() > 0 {
			nlo.Set(lo)
		}
		alts = append(alts, uintRange(nlo, hi))
	}
	return alt(alts), nil
}

// uintRange is the expression for the decimal numerals of [lo, hi], 0 ≤ lo ≤ hi.
func uintRange(lo, hi *big.Int) string {
	var alts []string
	for _, p := range uintRangeByLength(lo, hi) {
		alts = append(alts, p.expr)
	}
	return alt(alts)
}

type lengthPart struct {
	n    int // digits
	expr string
}

// uintRangeByLength splits the numerals of [lo, hi] by their length.
func uintRangeByLength(lo, hi *big.Int) []lengthPart {
	if lo.Cmp(hi) > 0 {
		return nil
	}
	ls, hs := lo.String(), hi.String()
	var parts []lengthPart
	for n := len(ls); n <= len(hs); n++ {
		a, b := ls, hs
		if n > len(ls) {
			a = "1" + strings.Repeat("0", n-1)
		}
		if n < len(hs) {
			b = strings.Repeat("9", n)
		}
		parts = append(parts, lengthPart{n, sameLength(a, b)})
	}
	return parts
}

// sameLength is the expression for the digit strings s with a ≤ s ≤ b, all
// three of the same length.
func sameLength(a, b string) string {
	if a == b {
		return `"` + a + `"`
	}
	i := 0
	for a[i] == b[i] {
		i++
	}
	prefix := ""
	if i > 0 {
		prefix = `"` + a[:i] + `" `
	}
	a, b = a[i:], b[i:]
	n := len(a) - 1
	ra, rb := a[1:], b[1:]
	if strings.Trim(ra, "0") == "" && strings.Trim(rb, "9") == "" {
		return prefix + digitClass(a[0], b[0]) + anyDigits(n, n)
	}
	var alts []string
	alts = append(alts, `"`+a[:1]+`" `+group(sameLength(ra, strings.Repeat("9", n))))
	if b[0]-a[0] >= 2 {
		alts = append(alts, digitClass(a[0]+1, b[0]-1)+anyDigits(n, n))
	}
	alts = append(alts, `"`+b[:1]+`" `+group(sameLength(strings.Repeat("0", n), rb)))
	return prefix + "(" + strings.Join(alts, " | ") + ")"
}

func digitClass(a, b byte) string {
	if a == b {
		return `"` + string(a) + `"`
	}
	return "[" + string(a) + "-" + string(b) + "]"
}

// anyDigits is " [0-9]{lo,hi}", or "" when hi is 0.
func anyDigits(lo, hi int) string {
	switch {
	case hi <= 0:
		return ""
	case lo == hi && lo == 1:
		return " [0-9]"
	case lo == hi:
		return " [0-9]{" + strconv.Itoa(lo) + "}"
	}
	return " [0-9]{" + strconv.Itoa(lo) + "," + strconv.Itoa(hi) + "}"
}

func group(e string) string {
	if strings.HasPrefix(e, "(") && strings.HasSuffix(e, ")") && balanced(e[1:len(e)-1]) {
		return e
	}
	if !strings.ContainsAny(e, " |") {
		return e
	}
	return "(" + e + ")"
}

// balanced reports whether the parentheses outside string literals and
// classes of a GBNF expression balance (so "(a) (b)" is not one group).
func balanced(e string) bool {
	depth := 0
	inStr, inClass := false, false
	for i := 0; i < len(e); i++ {
		c := e[i]
		switch {
		case inStr || inClass:
			if c == '\\' {
				i++
			} else if (inStr && c == '"') || (inClass && c == ']') {
				inStr, inClass = false, false
			}
		case c == '"':
			inStr = true
		case c == '[':
			inClass = true
		case c == '(':
			depth++
		case c == ')':
			depth--
			if depth < 0 {
				return false
			}
		}
	}
	return depth == 0
}

func alt(alts []string) string {
	switch len(alts) {
	case 0:
		return ""
	case 1:
		return alts[0]
	}
	return "(" + strings.Join(alts, " | ") + ")"
}

// decimal splits a non-negative rational with a finite decimal expansion
// into its integer part and its fraction digits (no trailing zeros).
func decimal(r *big.Rat) (*big.Int, string) {
	ip := ratFloor(r)
	frac := new(big.Rat).Sub(r, new(big.Rat).SetInt(ip))
	var digits []byte
	ten := big.NewRat(10, 1)
	for frac.Sign() != 0 && len(digits) < 400 {
		frac.Mul(frac, ten)
		d := ratFloor(frac)
		digits = append(digits, byte('0'+d.Int64()))
		frac.Sub(frac, new(big.Rat).SetInt(d))
	}
	return ip, string(digits)
}

// numberGrammar is the GBNF expression for the numbers of r written as
// decimals -?I(.F)? with at most maxDigits digits, no exponent and no "-0".
func numberGrammar(r numRange, path string) (string, error) {
	capRat := new(big.Rat).SetInt(new(big.Int).Add(capInt, bigOne)) // 10^maxDigits
	// Beyond ±10^maxDigits nothing is written: a bound outside is no bound,
	// a bound inside on the far side leaves nothing.
	if r.lo.v != nil && r.lo.v.Cmp(new(big.Rat).Neg(capRat)) <= 0 {
		r.lo = limit{}
	}
	if r.hi.v != nil && r.hi.v.Cmp(capRat) >= 0 {
		r.hi = limit{}
	}
	if (r.lo.v != nil && r.lo.v.Cmp(capRat) >= 0) || (r.hi.v != nil && r.hi.v.Cmp(new(big.Rat).Neg(capRat)) <= 0) {
		return "", &Error{Path: path, Keyword: "minimum", Reason: fmt.Sprintf("numbers of %d digits or more are not written", maxDigits+1)}
	}
	if r.lo.v != nil && r.hi.v != nil {
		c := r.lo.v.Cmp(r.hi.v)
		if c > 0 || (c == 0 && (r.lo.excl || r.hi.excl)) {
			return "", &Error{Path: path, Keyword: "maximum", Reason: "no number lies within the bounds", none: true}
		}
	}
	zero := new(big.Rat)
	var alts []string
	// Negative part: "-" and a magnitude m > 0 with -hi ≤ m ≤ -lo.
	if r.lo.v == nil || r.lo.v.Sign() < 0 {
		mlo := limit{zero, true}
		if r.hi.v != nil && r.hi.v.Sign() < 0 {
			mlo = limit{new(big.Rat).Neg(r.hi.v), r.hi.excl}
		} else if r.hi.v != nil && r.hi.v.Sign() == 0 {
			mlo = limit{zero, true}
		}
		var mhi limit
		if r.lo.v != nil {
			mhi = limit{new(big.Rat).Neg(r.lo.v), r.lo.excl}
		}
		if e := magnitudes(mlo, mhi); e != "" {
			alts = append(alts, `"-" `+group(e))
		}
	}
	// Non-negative part.
	if r.hi.v == nil || r.hi.v.Sign() > 0 || (r.hi.v.Sign() == 0 && !r.hi.excl) {
		mlo := limit{zero, false}
		if r.lo.v != nil && r.lo.v.Sign() >= 0 {
			mlo = r.lo
		}
		if e := magnitudes(mlo, r.hi); e != "" {
			alts = append(alts, e)
		}
	}
	if len(alts) == 0 {
		return "", &Error{Path: path, Keyword: "maximum", Reason: "no number lies within the bounds", none: true}
	}
	return alt(alts), nil
}

// magnitudes is the expression for the decimals m with lo ≤ m ≤ hi (< when
// exclusive), 0 ≤ lo; hi.v nil means below 10^maxDigits. "" when none.
func magnitudes(lo, hi limit) string {
	A, fa := decimal(lo.v)
	var B *big.Int
	var fb string
	if hi.v != nil {
		B, fb = decimal(hi.v)
	} else {
		B = capInt
	}
	budget := func(ip *big.Int) int { return maxDigits - len(ip.String()) }
	var alts []string
	add := func(intExpr string, fr fracSet) {
		if e := fr.after(intExpr); e != "" {
			alts = append(alts, e)
		}
	}
	lowFrac := func(L int) fracSet {
		if lo.excl {
			return fracGT(fa, L)
		}
		return fracGE(fa, L)
	}
	highFrac := func(L int) fracSet {
		if hi.v == nil {
			return fracAny(L)
		}
		if hi.excl {
			return fracLT(fb, L)
		}
		return fracLE(fb, L)
	}
	if A.Cmp(B) == 0 {
		if hi.v == nil {
			add(`"`+A.String()+`"`, lowFrac(budget(A)))
		} else {
			add(`"`+A.String()+`"`, fracRange(fa, lo.excl, fb, hi.excl, budget(A)))
		}
		return alt(alts)
	}
	add(`"`+A.String()+`"`, lowFrac(budget(A)))
	mid0 := new(big.Int).Add(A, bigOne)
	mid1 := new(big.Int).Sub(B, bigOne)
	for _, p := range uintRangeByLength(mid0, mid1) {
		add(group(p.expr), fracAny(maxDigits-p.n))
	}
	add(`"`+B.String()+`"`, highFrac(budget(B)))
	return alt(alts)
}

// fracSet is a set of fraction digit strings: whether the empty one (no
// fraction) is in it, and an expression for the non-empty ones ("" none).
type fracSet struct {
	empty bool
	expr  string
}

// after is the expression for integer part ip followed by a fraction of
// the set, "" when the set is empty.
func (f fracSet) after(ip string) string {
	switch {
	case f.expr == "" && !f.empty:
		return ""
	case f.expr == "":
		return ip
	case f.empty:
		return ip + ` ("." ` + group(f.expr) + `)?`
	}
	return ip + ` "." ` + group(f.expr)
}

// prefixed is the set of d followed by a string of f.
func (f fracSet) prefixed(d byte) string {
	switch {
	case f.expr == "" && !f.empty:
		return ""
	case f.expr == "":
		return `"` + string(d) + `"`
	case f.empty:
		return `"` + string(d) + `" ` + group(f.expr) + "?"
	}
	return `"` + string(d) + `" ` + group(f.expr)
}

func digitAt(f string, i int) byte {
	if i < len(f) {
		return f[i]
	}
	return '0'
}

func tail(f string) string {
	if len(f) == 0 {
		return ""
	}
	return f[1:]
}

func allZero(f string) bool { return strings.Trim(f, "0") == "" }

func joinSet(empty bool, alts []string) fracSet {
	var keep []string
	for _, a := range alts {
		if a != "" {
			keep = append(keep, a)
		}
	}
	return fracSet{empty, alt(keep)}
}

// fracAny: every string of at most L digits.
func fracAny(L int) fracSet {
	if L <= 0 {
		return fracSet{empty: true}
	}
	return fracSet{true, strings.TrimSpace(anyDigits(1, L))}
}

// fracGE: strings s of at most L digits with 0.s ≥ 0.f.
func fracGE(f string, L int) fracSet {
	if allZero(f) {
		return fracAny(L)
	}
	if L <= 0 {
		return fracSet{}
	}
	d := digitAt(f, 0)
	var alts []string
	if d < '9' {
		alts = append(alts, digitClass(d+1, '9')+anyDigits(0, L-1))
	}
	alts = append(alts, fracGE(tail(f), L-1).prefixed(d))
	return joinSet(false, alts)
}

// fracGT: 0.s > 0.f.
func fracGT(f string, L int) fracSet {
	if L <= 0 {
		return fracSet{}
	}
	d := digitAt(f, 0)
	var alts []string
	if d < '9' {
		alts = append(alts, digitClass(d+1, '9')+anyDigits(0, L-1))
	}
	alts = append(alts, fracGT(tail(f), L-1).prefixed(d))
	return joinSet(false, alts)
}

// fracLE: 0.s ≤ 0.f.
func fracLE(f string, L int) fracSet {
	if L <= 0 {
		return fracSet{empty: true}
	}
	if allZero(f) {
		return fracSet{true, "[0]{1," + strconv.Itoa(L) + "}"}
	}
	d := digitAt(f, 0)
	var alts []string
	if d > '0' {
		alts = append(alts, digitClass('0', d-1)+anyDigits(0, L-1))
	}
	alts = append(alts, fracLE(tail(f), L-1).prefixed(d))
	return joinSet(true, alts)
}

// fracLT: 0.s < 0.f.
func fracLT(f string, L int) fracSet {
	if allZero(f) {
		return fracSet{}
	}
	if L <= 0 {
		return fracSet{empty: true}
	}
	d := digitAt(f, 0)
	var alts []string
	if d > '0' {
		alts = append(alts, digitClass('0', d-1)+anyDigits(0, L-1))
	}
	alts = append(alts, fracLT(tail(f), L-1).prefixed(d))
	return joinSet(true, alts)
}

// fracRange: 0.lo ≤ 0.s ≤ 0.hi (< where exclusive), 0.lo ≤ 0.hi.
func fracRange(lo string, loX bool, hi string, hiX bool, L int) fracSet {
	if allZero(lo) && !loX {
		if hiX {
			return fracLT(hi, L)
		}
		return fracLE(hi, L)
	}
	if allZero(hi) {
		// 0.lo ≤ 0.s ≤ 0: only when lo is 0 inclusive, handled above.
		return fracSet{}
	}
	if L <= 0 {
		return fracSet{}
	}
	a, b := digitAt(lo, 0), digitAt(hi, 0)
	if a == b {
		return joinSet(false, []string{fracRange(tail(lo), loX, tail(hi), hiX, L-1).prefixed(a)})
	}
	var alts []string
	if loX {
		alts = append(alts, fracGT(tail(lo), L-1).prefixed(a))
	} else {
		alts = append(alts, fracGE(tail(lo), L-1).prefixed(a))
	}
	if b-a >= 2 {
		alts = append(alts, digitClass(a+1, b-1)+anyDigits(0, L-1))
	}
	if hiX {
		alts = append(alts, fracLT(tail(hi), L-1).prefixed(b))
	} else {
		alts = append(alts, fracLE(tail(hi), L-1).prefixed(b))
	}
	return joinSet(false, alts)
}
