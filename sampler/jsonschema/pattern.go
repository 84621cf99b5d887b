package jsonschema

import (
	"fmt"
	"sort"
	"strconv"
	"strings"
	"sync"
)

// Patterns are ECMA-262 regular expressions that match anywhere in the
// string unless anchored. The subset translated here is the one on which
// JavaScript, Python's re and Go's regexp agree: literals, escapes of
// syntax characters, \t \n \r \f \v \0 \xHH \uHHHH, ".", classes with
// ranges and negation, \d \w \s and their negations (ASCII meanings; the
// negations match ASCII characters only, where the engines agree), groups
// ((...), (?:...), (?<name>...)), alternation, the quantifiers * + ? {n}
// {n,} {n,m} (lazy or not: the language is the same), and ^ and $. Strings
// under a pattern hold only characters of the Basic Multilingual Plane (one
// UTF-16 unit each, so that "." and lengths mean the same in every engine).
// Lookaheads are read right after a leading ^ only. Anything else
// (lookbehind, backreferences, \b, \p{...}, inline flags) is refused.

type rkind int

const (
	rSet rkind = iota
	rCat
	rAlt
	rRep
	rBOL
	rEOL
	rLook // lookahead (?=...) or (?!...): only right after a leading ^
)

type rnode struct {
	kind     rkind
	set      runeSet
	subs     []*rnode
	min, max int  // rRep; max -1: unbounded
	neg      bool // rLook: (?!...)
}

type reParser struct {
	src []rune
	pos int
	err string
}

// patternChars is the universe of characters a string under a pattern holds.
var patternChars = bmpChars

var (
	asciiSet      = setOf(span{0, 0x7F})
	digitSet      = setOf(span{'0', '9'})
	wordSet       = setOf(span{'0', '9'}, span{'A', 'Z'}, span{'a', 'z'}, span{'_', '_'})
	spaceSet      = setOf(span{'\t', '\n'}, span{'\f', '\r'}, span{' ', ' '}) // Go's \s; JS and Python have more
	spaceSetWider = setOf(span{'\t', '\r'}, span{0x1C, 0x1F}, span{' ', ' '}) // Python's \s in ASCII
	lineEnds      = setOf(span{'\n', '\n'}, span{'\r', '\r'}, span{0x2028, 0x2029})
)

func parsePattern(p string) (*rnode, error) {
	ps := &reParser{src: []rune(p)}
	n := ps.alt()
	if ps.err == "" && ps.pos < len(ps.src) {
		ps.fail("unexpected %q", string(ps.src[ps.pos]))
	}
	if ps.err != "" {
		return nil, fmt.Errorf("%s", ps.err)
	}
	return n, nil
}

func (p *reParser) fail(format string, args ...any) {
	if p.err == "" {
		p.err = fmt.Sprintf(format, args...) + fmt.Sprintf(" at offset %d", p.pos)
	}
}

func (p *reParser) more() bool { return p.pos < len(p.src) && p.err == "" }

func (p *reParser) peek() rune { return p.src[p.pos] }

func (p *reParser) alt() *rnode {
	alts := []*rnode{p.cat()}
	for p.more() && p.peek() == '|' {
		p.pos++
		alts = append(alts, p.cat())
	}
	if len(alts) == 1 {
		return alts[0]
	}
	return &rnode{kind: rAlt, subs: alts}
}

func (p *reParser) cat() *rnode {
	n := &rnode{kind: rCat}
	for p.more() && p.peek() != '|' && p.peek() != ')' {
		a := p.atom()
		if a == nil {
			break
		}
		n.subs = append(n.subs, p.quantified(a))
	}
	return n
}

func (p *reParser) quantified(a *rnode) *rnode {
	if !p.more() {
		return a
	}
	lo, hi := -1, -1
	switch p.peek() {
	case '*':
		lo, hi = 0, -1
		p.pos++
	case '+':
		lo, hi = 1, -1
		p.pos++
	case '?':
		lo, hi = 0, 1
		p.pos++
	case '{':
		start := p.pos
		end := start + 1
		for end < len(p.src) && p.src[end] != '}' {
			end++
		}
		if end == len(p.src) {
			p.fail("'{' without '}'")
			return a
		}
		body := string(p.src[start+1 : end])
		a0, b0, comma := strings.Cut(body, ",")
		x, err1 := strconv.Atoi(a0)
		if err1 != nil || x < 0 {
			p.fail("bad quantifier {%s}", body)
			return a
		}
		lo, hi = x, x
		if comma {
			hi = -1
			if b0 != "" {
				y, err := strconv.Atoi(b0)
				if err != nil || y < x {
					p.fail("bad quantifier {%s}", body)
					return a
				}
				hi = y
			}
		}
		if lo > 1000 || hi > 1000 {
			p.fail("quantifier {%s} above 1000", body)
			return a
		}
		p.pos = end + 1
	default:
		return a
	}
	if a.kind == rBOL || a.kind == rEOL || a.kind == rLook {
		p.fail("quantified assertion")
		return a
	}
	if p.more() && p.peek() == '?' {
		p.pos++ // lazy: the same language
	}
	if p.more() && strings.ContainsRune("*+?{", p.peek()) {
		p.fail("quantifier after a quantifier")
	}
	return &rnode{kind: rRep, subs: []*rnode{a}, min: lo, max: hi}
}

func (p *reParser) atom() *rnode {
	c := p.peek()
	switch c {
	case '(':
		p.pos++
		if p.more() && p.peek() == '?' {
			rest := string(p.src[p.pos:])
			switch {
			case strings.HasPrefix(rest, "?:"):
				p.pos += 2
			case strings.HasPrefix(rest, "?=") || strings.HasPrefix(rest, "?!"):
				neg := rest[1] == '!'
				p.pos += 2
				n := p.alt()
				if !p.more() || p.peek() != ')' {
					p.fail("missing ')'")
					return nil
				}
				p.pos++
				return &rnode{kind: rLook, neg: neg, subs: []*rnode{n}}
			case strings.HasPrefix(rest, "?<") && !strings.HasPrefix(rest, "?<=") && !strings.HasPrefix(rest, "?<!"):
				end := strings.IndexRune(rest, '>')
				if end < 0 {
					p.fail("unterminated group name")
					return nil
				}
				p.pos += len([]rune(rest[:end+1]))
			default:
				p.fail("lookaround and inline flags are not supported")
				return nil
			}
		}
		n := p.alt()
		if !p.more() || p.peek() != ')' {
			p.fail("missing ')'")
			return nil
		}
		p.pos++
		return n
	case '[':
		return p.class()
	case '.':
		p.pos++
		return &rnode{kind: rSet, set: patternChars.minus(lineEnds)}
	case '^':
		p.pos++
		return &rnode{kind: rBOL}
	case '$':
		p.pos++
		return &rnode{kind: rEOL}
	case '\\':
		set, ok := p.escape(false)
		if !ok {
			return nil
		}
		return &rnode{kind: rSet, set: set}
	case '*', '+', '?', '{':
		p.fail("nothing to repeat")
		return nil
	}
	p.pos++
	return &rnode{kind: rSet, set: setOf(span{c, c})}
}

// escape reads an escape after '\'; inClass: \b is a backspace there.
func (p *reParser) escape(inClass bool) (runeSet, bool) {
	p.pos++
	if !p.more() {
		p.fail("pattern ends in '\\'")
		return nil, false
	}
	c := p.peek()
	p.pos++
	one := func(r rune) (runeSet, bool) { return setOf(span{r, r}), true }
	switch c {
	case 'd':
		return digitSet, true
	case 'D':
		return asciiSet.minus(digitSet), true
	case 'w':
		return wordSet, true
	case 'W':
		return asciiSet.minus(wordSet), true
	case 's':
		return spaceSet, true
	case 'S':
		return asciiSet.minus(spaceSetWider), true
	case 't':
		return one('\t')
	case 'n':
		return one('\n')
	case 'r':
		return one('\r')
	case 'f':
		return one('\f')
	case 'v':
		return one('\v')
	case '0':
		if p.more() && p.peek() >= '0' && p.peek() <= '9' {
			p.fail("octal escapes are not supported")
			return nil, false
		}
		return one(0)
	case 'x', 'u':
		n := 2
		if c == 'u' {
			n = 4
		}
		if p.pos+n > len(p.src) {
			p.fail("short \\%c escape", c)
			return nil, false
		}
		v, err := strconv.ParseUint(string(p.src[p.pos:p.pos+n]), 16, 32)
		if err != nil {
			p.fail("bad \\%c escape", c)
			return nil, false
		}
		p.pos += n
		return one(rune(v))
	case 'b':
		if inClass {
			return one('\b')
		}
	}
	if strings.ContainsRune(`^$\.*+?()[]{}|/-`, c) {
		return one(c)
	}
	p.fail("escape \\%c is not supported", c)
	return nil, false
}

func (p *reParser) class() *rnode {
	p.pos++ // '['
	negate := false
	if p.more() && p.peek() == '^' {
		negate = true
		p.pos++
	}
	if p.more() && p.peek() == ']' {
		p.fail("empty class (engines disagree on it)")
		return nil
	}
	var set runeSet
	shorthand := false
	for {
		if !p.more() {
			p.fail("missing ']'")
			return nil
		}
		if p.peek() == ']' {
			p.pos++
			break
		}
		var lo runeSet
		if p.peek() == '\\' {
			e := p.src[p.pos+1:]
			if len(e) > 0 && strings.ContainsRune("dDwWsS", e[0]) {
				shorthand = true
			}
			var ok bool
			if lo, ok = p.escape(true); !ok {
				return nil
			}
		} else {
			if p.peek() == '[' {
				p.fail("'[' inside a class (engines disagree on it)")
				return nil
			}
			lo = setOf(span{p.peek(), p.peek()})
			p.pos++
		}
		if p.more() && p.peek() == '-' && p.pos+1 < len(p.src) && p.src[p.pos+1] != ']' {
			p.pos++
			var hi runeSet
			if p.peek() == '\\' {
				var ok bool
				if hi, ok = p.escape(true); !ok {
					return nil
				}
			} else {
				hi = setOf(span{p.peek(), p.peek()})
				p.pos++
			}
			if len(lo) != 1 || lo[0].lo != lo[0].hi || len(hi) != 1 || hi[0].lo != hi[0].hi || hi[0].lo < lo[0].lo {
				p.fail("bad class range")
				return nil
			}
			lo = setOf(span{lo[0].lo, hi[0].lo})
		}
		set = set.union(lo)
	}
	if negate {
		set = set.complement()
		if shorthand {
			set = set.intersect(asciiSet) // [^\d] and the like: where the engines agree
		}
	}
	return &rnode{kind: rSet, set: set.intersect(patternChars)}
}

// nfa is a Thompson automaton: state 0 starts, accept accepts.
type nfa struct {
	eps    [][]int
	bol    [][]int
	eol    [][]int
	edges  [][]nfaEdge
	accept int
}

type nfaEdge struct {
	set runeSet
	to  int
}

func (a *nfa) state() int {
	a.eps = append(a.eps, nil)
	a.bol = append(a.bol, nil)
	a.eol = append(a.eol, nil)
	a.edges = append(a.edges, nil)
	return len(a.eps) - 1
}

const maxNFAStates = 20000

// build adds n between states from and to.
func (a *nfa) build(n *rnode, from, to int) error {
	if len(a.eps) > maxNFAStates {
		return fmt.Errorf("pattern too large")
	}
	switch n.kind {
	case rSet:
		a.edges[from] = append(a.edges[from], nfaEdge{n.set, to})
	case rBOL:
		a.bol[from] = append(a.bol[from], to)
	case rEOL:
		a.eol[from] = append(a.eol[from], to)
	case rAlt:
		for _, s := range n.subs {
			if err := a.build(s, from, to); err != nil {
				return err
			}
		}
	case rCat:
		cur := from
		for i, s := range n.subs {
			next := to
			if i < len(n.subs)-1 {
				next = a.state()
			}
			if err := a.build(s, cur, next); err != nil {
				return err
			}
			cur = next
		}
		if len(n.subs) == 0 {
			a.eps[from] = append(a.eps[from], to)
		}
	case rRep:
		cur := from
		for range n.min {
			next := a.state()
			if err := a.build(n.subs[0], cur, next); err != nil {
				return err
			}
			cur = next
		}
		if n.max < 0 {
			loop := a.state()
			a.eps[cur] = append(a.eps[cur], loop)
			if err := a.build(n.subs[0], loop, loop); err != nil {
				return err
			}
			a.eps[loop] = append(a.eps[loop], to)
			return nil
		}
		for range n.max - n.min {
			next := a.state()
			a.eps[cur] = append(a.eps[cur], to)
			if err := a.build(n.subs[0], cur, next); err != nil {
				return err
			}
			cur = next
		}
		a.eps[cur] = append(a.eps[cur], to)
	}
	return nil
}

// dfa is a deterministic automaton over a partition of the characters.
type dfa struct {
	parts  []runeSet
	next   [][]int // next[state][part], -1 none
	accept []bool
}

const maxDFAStates = 2000

// compile turns a pattern into a DFA for the strings it matches anywhere
// (an unanchored pattern may have anything before and after it).
func compilePattern(p string) (*dfa, error) {
	re, err := parsePattern(p)
	if err != nil {
		return nil, err
	}
	// Lookaheads right after a leading ^ (as in ^(?!\.)(?!.*\.\.)...):
	// the string must (or must not) start with a match of each, which is
	// an intersection with (the complement of) that match followed by
	// anything. Anywhere else they are refused.
	var looks []*rnode
	if re.kind == rCat && len(re.subs) > 1 && re.subs[0].kind == rBOL {
		i := 1
		for i < len(re.subs) && re.subs[i].kind == rLook {
			looks = append(looks, re.subs[i])
			i++
		}
		re = &rnode{kind: rCat, subs: append([]*rnode{re.subs[0]}, re.subs[i:]...)}
	}
	if hasLook(re) {
		return nil, fmt.Errorf("lookahead is supported only right after a leading ^, lookbehind not at all")
	}
	d, err := compileNode(re)
	if err != nil {
		return nil, err
	}
	for _, l := range looks {
		if hasLook(l.subs[0]) {
			return nil, fmt.Errorf("nested lookahead is not supported")
		}
		ld, err := compileNode(&rnode{kind: rCat, subs: []*rnode{{kind: rBOL}, l.subs[0]}})
		if err != nil {
			return nil, err
		}
		if l.neg {
			ld = ld.complement()
		}
		if d, err = intersect(d, ld); err != nil {
			return nil, err
		}
	}
	return d, nil
}

func hasLook(n *rnode) bool {
	if n.kind == rLook {
		return true
	}
	for _, s := range n.subs {
		if hasLook(s) {
			return true
		}
	}
	return false
}

// complement is the automaton for the strings (of patternChars) d rejects.
func (d *dfa) complement() *dfa {
	n := len(d.accept)
	c := &dfa{parts: d.parts}
	for i := range n {
		row := make([]int, len(d.parts))
		for k, t := range d.next[i] {
			row[k] = t
			if t < 0 {
				row[k] = n // the sink
			}
		}
		c.next = append(c.next, row)
		c.accept = append(c.accept, !d.accept[i])
	}
	sink := make([]int, len(d.parts))
	for k := range sink {
		sink[k] = n
	}
	c.next = append(c.next, sink)
	c.accept = append(c.accept, true)
	return c
}

// compileNode builds the DFA for the strings that contain a match of re
// (anchors ^ and $ hold at the ends).
func compileNode(re *rnode) (*dfa, error) {
	anything := &rnode{kind: rRep, subs: []*rnode{{kind: rSet, set: patternChars}}, min: 0, max: -1}
	re = &rnode{kind: rCat, subs: []*rnode{anything, re, anything}}
	a := &nfa{}
	start, end := a.state(), a.state()
	a.accept = end
	if err := a.build(re, start, end); err != nil {
		return nil, err
	}
	// The partition: characters that no edge tells apart are one part.
	parts := []runeSet{patternChars}
	seen := map[string]bool{}
	for _, es := range a.edges {
		for _, e := range es {
			key := fmt.Sprint(e.set)
			if seen[key] {
				continue
			}
			seen[key] = true
			var next []runeSet
			for _, q := range parts {
				if in := q.intersect(e.set); !in.empty() {
					next = append(next, in)
				}
				if out := q.minus(e.set); !out.empty() {
					next = append(next, out)
				}
			}
			parts = next
		}
	}
	d := &dfa{parts: parts}
	closure := func(states []int, atStart bool) ([]int, bool) {
		type item struct {
			q        int
			afterEOL bool
		}
		visited := map[item]bool{}
		var consume []int
		accept := false
		stack := make([]item, 0, len(states))
		for _, q := range states {
			stack = append(stack, item{q, false})
		}
		for len(stack) > 0 {
			it := stack[len(stack)-1]
			stack = stack[:len(stack)-1]
			if visited[it] {
				continue
			}
			visited[it] = true
			if it.q == a.accept {
				accept = true
			}
			if !it.afterEOL && len(a.edges[it.q]) > 0 {
				consume = append(consume, it.q)
			}
			for _, t := range a.eps[it.q] {
				stack = append(stack, item{t, it.afterEOL})
			}
			if atStart {
				for _, t := range a.bol[it.q] {
					stack = append(stack, item{t, it.afterEOL})
				}
			}
			for _, t := range a.eol[it.q] {
				stack = append(stack, item{t, true})
			}
		}
		sort.Ints(consume)
		return slicesCompact(consume), accept
	}
	index := map[string]int{}
	var queue [][]int
	add := func(states []int, accept bool) (int, error) {
		key := fmt.Sprint(states, accept)
		if i, ok := index[key]; ok {
			return i, nil
		}
		if len(d.accept) >= maxDFAStates {
			return 0, fmt.Errorf("pattern needs more than %d automaton states", maxDFAStates)
		}
		i := len(d.accept)
		index[key] = i
		d.accept = append(d.accept, accept)
		d.next = append(d.next, nil)
		queue = append(queue, states)
		return i, nil
	}
	s0, acc0 := closure([]int{start}, true)
	if _, err := add(s0, acc0); err != nil {
		return nil, err
	}
	for i := 0; i < len(queue); i++ {
		row := make([]int, len(parts))
		for pi, part := range parts {
			r := part[0].lo
			var to []int
			for _, q := range queue[i] {
				for _, e := range a.edges[q] {
					if e.set.contains(r) {
						to = append(to, e.to)
					}
				}
			}
			row[pi] = -1
			if len(to) == 0 {
				continue
			}
			cs, acc := closure(to, false)
			if len(cs) == 0 && !acc {
				continue
			}
			j, err := add(cs, acc)
			if err != nil {
				return nil, err
			}
			row[pi] = j
		}
		d.next[i] = row
	}
	return d, nil
}

func slicesCompact(s []int) []int {
	out := s[:0]
	for i, x := range s {
		if i == 0 || x != s[i-1] {
			out = append(out, x)
		}
	}
	return out
}

// maxProductStates bounds automaton states × lengths for a pattern with
// minLength or maxLength.
const maxProductStates = 20000

// stringRules adds rules for the contents of a JSON string (between the
// quotes) that d accepts with a length in [lo, hi] (hi < 0: unbounded) and
// returns the start rule's name, or "" when no string qualifies.
func (b *Builder) stringRules(hint string, d *dfa, lo, hi int) (string, error) {
	counts := lo + 1 // counter values 0..lo, saturating at lo
	if hi >= 0 {
		counts = hi + 1
	}
	n := len(d.accept)
	if n*counts > maxProductStates {
		return "", fmt.Errorf("pattern with these lengths needs more than %d grammar rules", maxProductStates)
	}
	id := func(s, c int) int { return s*counts + c }
	step := func(c int) (int, bool) {
		if hi >= 0 {
			return c + 1, c+1 <= hi
		}
		return min(c+1, lo), true
	}
	// Live product states: those from which an accepting one is reachable.
	live := make([]bool, n*counts)
	for changed := true; changed; {
		changed = false
		for s := range n {
			for c := range counts {
				if live[id(s, c)] {
					continue
				}
				ok := d.accept[s] && c >= lo
				if !ok {
					if c2, can := step(c); can {
						for _, t := range d.next[s] {
							if t >= 0 && live[id(t, c2)] {
								ok = true
								break
							}
						}
					}
				}
				if ok {
					live[id(s, c)] = true
					changed = true
				}
			}
		}
	}
	if !live[id(0, 0)] {
		return "", nil
	}
	names := map[int]string{}
	var order []int
	name := func(s, c int) string {
		k := id(s, c)
		if nm, ok := names[k]; ok {
			return nm
		}
		nm := b.newName(hint)
		names[k] = nm
		order = append(order, k)
		return nm
	}
	root := name(0, 0)
	for i := 0; i < len(order); i++ {
		k := order[i]
		s, c := k/counts, k%counts
		var alts []string
		if d.accept[s] && c >= lo {
			alts = append(alts, "")
		}
		if c2, can := step(c); can {
			byTarget := map[int]runeSet{}
			var targets []int
			for pi, t := range d.next[s] {
				if t < 0 || !live[id(t, c2)] {
					continue
				}
				if _, ok := byTarget[t]; !ok {
					targets = append(targets, t)
				}
				byTarget[t] = byTarget[t].union(d.parts[pi])
			}
			for _, t := range targets {
				alts = append(alts, group(jsonChars(byTarget[t]))+" "+name(t, c2))
			}
		}
		body := strings.Join(alts, " | ")
		if body == "" {
			body = `""`
		}
		b.rules[names[k]] = body
	}
	return root, nil
}

// formatRegex: the formats as anchored patterns (the same strings as their
// grammar rules), for a format with a pattern or lengths beside it.
var formatRegex = map[string]string{
	"date":      dateRegex,
	"time":      `^` + timeRegex + `(?:Z|[+-](?:[01]\d|2[0-3]):[0-5]\d)$`,
	"date-time": `^` + dateRegex[1:len(dateRegex)-1] + `T` + timeRegex + `Z$`,
	"uuid":      `^[0-9a-f]{8}-[0-9a-f]{4}-[1-8][0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$`,
	"email":     `^[a-zA-Z0-9]{1,20}(?:\.[a-zA-Z0-9]{1,20}){0,2}@(?:` + labelRegex + `\.){1,3}[a-z]{2,6}$`,
	"hostname":  `^` + labelRegex + `(?:\.` + labelRegex + `){0,3}$`,
	"ipv4":      `^` + octetRegex + `(?:\.` + octetRegex + `){3}$`,
}

const (
	dateRegex  = `^(?:\d{4}-(?:(?:0[13578]|1[02])-(?:0[1-9]|[12]\d|3[01])|(?:0[469]|11)-(?:0[1-9]|[12]\d|30)|02-(?:0[1-9]|1\d|2[0-8]))|(?:\d\d(?:0[48]|[2468][048]|[13579][26])|(?:0[048]|[2468][048]|[13579][26])00)-02-29)$`
	timeRegex  = `(?:[01]\d|2[0-3]):[0-5]\d:[0-5]\d(?:\.\d{1,9})?`
	labelRegex = `[a-z0-9](?:[a-z0-9-]{0,18}[a-z0-9])?`
	octetRegex = `(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]\d|\d)`
)

var (
	formatMu   sync.Mutex
	formatDFAs = map[string]*dfa{}
)

// formatDFA compiles a format's pattern once.
func formatDFA(name string) (*dfa, error) {
	formatMu.Lock()
	defer formatMu.Unlock()
	if d, ok := formatDFAs[name]; ok {
		return d, nil
	}
	d, err := compilePattern(formatRegex[name])
	if err != nil {
		return nil, err
	}
	formatDFAs[name] = d
	return d, nil
}

// intersect is the automaton for the strings both accept.
func intersect(a, b *dfa) (*dfa, error) {
	type pair struct{ pa, pb int }
	var parts []runeSet
	var from []pair // the parts of a and b each new part lies in
	for i, x := range a.parts {
		for j, y := range b.parts {
			if z := x.intersect(y); !z.empty() {
				parts = append(parts, z)
				from = append(from, pair{i, j})
			}
		}
	}
	d := &dfa{parts: parts}
	index := map[pair]int{}
	var queue []pair
	add := func(p pair) (int, error) {
		if i, ok := index[p]; ok {
			return i, nil
		}
		if len(d.accept) >= maxDFAStates {
			return 0, fmt.Errorf("pattern needs more than %d automaton states", maxDFAStates)
		}
		index[p] = len(d.accept)
		d.accept = append(d.accept, a.accept[p.pa] && b.accept[p.pb])
		d.next = append(d.next, nil)
		queue = append(queue, p)
		return len(d.accept) - 1, nil
	}
	if _, err := add(pair{0, 0}); err != nil {
		return nil, err
	}
	for i := 0; i < len(queue); i++ {
		p := queue[i]
		row := make([]int, len(parts))
		for k, f := range from {
			ta, tb := a.next[p.pa][f.pa], b.next[p.pb][f.pb]
			row[k] = -1
			if ta < 0 || tb < 0 {
				continue
			}
			j, err := add(pair{ta, tb})
			if err != nil {
				return nil, err
			}
			row[k] = j
		}
		d.next[i] = row
	}
	return d, nil
}
