package llama

import (
	"unicode/utf8"

	"github.com/vlm-go/vlm"
)

// Token is a vocabulary id.
type Token = vlm.Token

// Vocab is a model's vocabulary and tokenizer. It is safe for concurrent use.
type Vocab struct {
	m *Model
}

// Size returns the number of tokens.
func (v *Vocab) Size() int {
	n := 0
	_ = v.m.use(func(c *vlm.LlamaModel) error { n = c.VocabSize(); return nil })
	return n
}

func (v *Vocab) special(f func(c *vlm.LlamaModel) Token) Token {
	t := Token(-1)
	_ = v.m.use(func(c *vlm.LlamaModel) error { t = f(c); return nil })
	return t
}

// BOS returns the beginning-of-sequence token, -1 if none.
func (v *Vocab) BOS() Token { return v.special((*vlm.LlamaModel).BOS) }

// EOS returns the end-of-sequence token, -1 if none.
func (v *Vocab) EOS() Token { return v.special((*vlm.LlamaModel).EOS) }

// EOT returns the end-of-turn token, -1 if none.
func (v *Vocab) EOT() Token { return v.special((*vlm.LlamaModel).EOT) }

// NL returns the newline token, -1 if none.
func (v *Vocab) NL() Token { return v.special((*vlm.LlamaModel).NL) }

// AddBOS reports whether Tokenize with addSpecial prepends BOS.
func (v *Vocab) AddBOS() bool {
	var b bool
	_ = v.m.use(func(c *vlm.LlamaModel) error { b = c.AddBOS(); return nil })
	return b
}

// AddEOS reports whether Tokenize with addSpecial appends EOS.
func (v *Vocab) AddEOS() bool {
	var b bool
	_ = v.m.use(func(c *vlm.LlamaModel) error { b = c.AddEOS(); return nil })
	return b
}

// IsEOG reports whether t ends generation (EOS, EOT, ...).
func (v *Vocab) IsEOG(t Token) bool {
	var b bool
	_ = v.m.use(func(c *vlm.LlamaModel) error { b = c.IsEOG(t); return nil })
	return b
}

// EOGTokens returns every token that ends generation (IsEOG), in id
// order: what a sampler's LogitBias bans to keep generating.
func (v *Vocab) EOGTokens() []Token {
	var out []Token
	for t := 0; t < v.Size(); t++ {
		if v.IsEOG(Token(t)) {
			out = append(out, Token(t))
		}
	}
	return out
}

// IsControl reports whether t is a control token.
func (v *Vocab) IsControl(t Token) bool {
	var b bool
	_ = v.m.use(func(c *vlm.LlamaModel) error { b = c.IsControl(t); return nil })
	return b
}

// Text returns the vocabulary string of t.
func (v *Vocab) Text(t Token) (string, error) {
	var s string
	err := v.m.use(func(c *vlm.LlamaModel) (err error) { s, err = c.TokenText(t); return err })
	return s, err
}

// Tokenize converts text to tokens. addSpecial adds BOS (and EOS) as the
// model wants; parseSpecial turns special-token strings in text (e.g.
// "<|im_start|>") into their tokens instead of plain text.
func (v *Vocab) Tokenize(text string, addSpecial, parseSpecial bool) ([]Token, error) {
	var toks []Token
	err := v.m.use(func(c *vlm.LlamaModel) (err error) {
		toks, err = c.Tokenize(text, addSpecial, parseSpecial)
		return err
	})
	return toks, err
}

// Piece returns the bytes token t stands for (special tokens rendered only
// when special is set). A piece can be part of a multi-byte UTF-8 sequence;
// Decoder joins pieces into complete text.
func (v *Vocab) Piece(t Token, special bool) ([]byte, error) {
	var b []byte
	err := v.m.use(func(c *vlm.LlamaModel) (err error) { b, err = c.TokenPiece(t, special); return err })
	return b, err
}

// Detokenize converts tokens to text. removeSpecial drops a BOS/EOS the
// tokenizer added; unparseSpecial renders special tokens as text.
func (v *Vocab) Detokenize(tokens []Token, removeSpecial, unparseSpecial bool) (string, error) {
	var s string
	err := v.m.use(func(c *vlm.LlamaModel) (err error) {
		s, err = c.Detokenize(tokens, removeSpecial, unparseSpecial)
		return err
	})
	return s, err
}

// Decoder turns a stream of tokens into text, holding back bytes of a UTF-8
// sequence until it is complete, so every string it returns is valid UTF-8
// (apart from bytes that can never become valid, which pass through).
type Decoder struct {
	v       *Vocab
	special bool
	pending []byte
}

// NewDecoder returns a Decoder; special renders special tokens as text.
func (v *Vocab) NewDecoder(special bool) *Decoder { return &Decoder{v: v, special: special} }

// Add appends token t and returns the text that is now complete.
func (d *Decoder) Add(t Token) (string, error) {
	piece, err := d.v.Piece(t, d.special)
	if err != nil {
		return "", err
	}
	d.pending = append(d.pending, piece...)
	n := completeUTF8Prefix(d.pending)
	out := string(d.pending[:n])
	d.pending = append(d.pending[:0], d.pending[n:]...)
	return out, nil
}

// Flush returns whatever bytes are still held back.
func (d *Decoder) Flush() string {
	out := string(d.pending)
	d.pending = d.pending[:0]
	return out
}

// completeUTF8Prefix returns the length of b without a trailing UTF-8
// sequence that is incomplete but could still become valid.
func completeUTF8Prefix(b []byte) int {
	// A sequence is at most 4 bytes: look back at most 3 for its start.
	for back := 1; back <= 3 && back <= len(b); back++ {
		c := b[len(b)-back]
		if c < 0x80 {
			return len(b) // ASCII: everything before is complete
		}
		if c >= 0xC0 { // the leading byte of the last sequence
			if !utf8.FullRune(b[len(b)-back:]) {
				return len(b) - back
			}
			return len(b)
		}
	}
	return len(b)
}
