package testmodel

import (
	"fmt"
)

// Token types as stored in tokenizer.ggml.token_type (llama.cpp's
// llama_token_type).
const (
	TokenNormal      int32 = 1
	TokenUnknown     int32 = 2
	TokenControl     int32 = 3
	TokenUserDefined int32 = 4
	TokenByte        int32 = 6
)

// Vocab is the tokenizer of a generated text model
// (tokenizer.ggml.model "llama", SentencePiece-style with byte fallback).
type Vocab struct {
	// Tokens are the token strings by id; no two are equal.
	Tokens []string
	// Scores are the SentencePiece scores by id (higher merges first).
	Scores []float32
	// Types are the token types by id (TokenNormal, TokenControl, ...).
	Types []int32
	// BOS, EOS, UNK and PAD are the special token ids written to
	// tokenizer.ggml.{bos,eos,unknown,padding}_token_id.
	BOS, EOS, UNK, PAD int
	// EOT is tokenizer.ggml.eot_token_id, or -1 when the family has none.
	EOT int
	// AddBOS is tokenizer.ggml.add_bos_token: whether llama.cpp puts BOS in
	// front when tokenizing with special tokens (false for SmolVLM, whose
	// template writes <|im_start|> itself).
	AddBOS bool
	// AddSpacePrefix is tokenizer.ggml.add_space_prefix.
	AddSpacePrefix bool
	// ChatTemplate is tokenizer.chat_template, the family's real template.
	ChatTemplate string
	// NaturalSize is the vocabulary's size without filler pieces.
	NaturalSize int
}

// ID returns the id of the token with exactly this text, or -1.
func (v *Vocab) ID(text string) int {
	for i, t := range v.Tokens {
		if t == text {
			return i
		}
	}
	return -1
}

type special struct {
	text string
	typ  int32
}

type familyDef struct {
	leading, trailing       []special
	bos, eos, eot, unk, pad string // eot "" = none
	addBOS, addSpacePrefix  bool
	template                string
}

func ctl(texts ...string) []special {
	out := make([]special, len(texts))
	for i, t := range texts {
		out[i] = special{t, TokenControl}
	}
	return out
}

// idefics3MaxTiles is the largest row/column number of SmolVLM's
// <row_R_col_C> tokens (SmolVLM has 6×6).
const idefics3MaxTiles = 6

func family(f Family) familyDef {
	switch f {
	case FamilySmolVLM:
		trailing := ctl("<fake_token_around_image>", "<image>", "<end_of_utterance>", "<global-img>")
		for r := 1; r <= idefics3MaxTiles; r++ {
			for c := 1; c <= idefics3MaxTiles; c++ {
				trailing = append(trailing, special{fmt.Sprintf("<row_%d_col_%d>", r, c), TokenControl})
			}
		}
		return familyDef{
			leading:  append([]special{{"<unk>", TokenUnknown}}, ctl("<|im_start|>", "<|im_end|>")...),
			trailing: trailing,
			bos:      "<|im_start|>", eos: "<end_of_utterance>", eot: "<end_of_utterance>", unk: "<unk>", pad: "<|im_end|>",
			addBOS: false, addSpacePrefix: false,
			template: templateSmolVLM,
		}
	case FamilyGemma3:
		return familyDef{
			leading:  append(ctl("<pad>", "<bos>"), special{"<unk>", TokenUnknown}),
			trailing: ctl("<start_of_turn>", "<end_of_turn>", "<start_of_image>", "<end_of_image>"),
			bos:      "<bos>", eos: "<end_of_turn>", eot: "<end_of_turn>", unk: "<unk>", pad: "<pad>",
			addBOS: true, addSpacePrefix: false,
			template: templateGemma3,
		}
	case FamilyQwen2VL:
		return familyDef{
			leading:  append([]special{{"<unk>", TokenUnknown}}, ctl("<|endoftext|>", "<|im_start|>", "<|im_end|>")...),
			trailing: ctl("<|vision_start|>", "<|vision_end|>", "<|image_pad|>", "<|video_pad|>"),
			bos:      "<|endoftext|>", eos: "<|im_end|>", eot: "<|im_end|>", unk: "<unk>", pad: "<|endoftext|>",
			addBOS: false, addSpacePrefix: false,
			template: templateQwen2VL,
		}
	default: // FamilyLLaVA
		return familyDef{
			leading:  append([]special{{"<unk>", TokenUnknown}}, ctl("<s>", "</s>")...),
			trailing: ctl("<image>", "<pad>"),
			bos:      "<s>", eos: "</s>", unk: "<unk>", pad: "<pad>",
			addBOS: true, addSpacePrefix: true,
			template: templateLLaVA,
		}
	}
}

// spaceMark is SentencePiece's visible space, "▁" (U+2581).
const spaceMark = "\u2581"

// vocabBuilder appends unique tokens.
type vocabBuilder struct {
	v    *Vocab
	seen map[string]bool
	norm int // normal pieces so far, for scores
}

func (b *vocabBuilder) add(text string, typ int32) bool {
	if b.seen[text] {
		return false
	}
	b.seen[text] = true
	var score float32
	if typ == TokenNormal {
		b.norm++
		score = -float32(b.norm)
	}
	b.v.Tokens = append(b.v.Tokens, text)
	b.v.Scores = append(b.v.Scores, score)
	b.v.Types = append(b.v.Types, typ)
	return true
}

// buildVocab builds the vocabulary of c (whose other fields are valid).
func buildVocab(c TextConfig) (*Vocab, error) {
	fam := family(c.Family)
	v := &Vocab{AddBOS: fam.addBOS, AddSpacePrefix: fam.addSpacePrefix, ChatTemplate: fam.template}
	b := &vocabBuilder{v: v, seen: make(map[string]bool)}
	for _, s := range fam.leading {
		b.add(s.text, s.typ)
	}
	for i := range 256 {
		b.add(fmt.Sprintf("<0x%02X>", i), TokenByte)
	}
	b.add(spaceMark, TokenNormal)
	b.add("\n", TokenNormal)
	b.add("\n\n", TokenNormal)
	for ch := byte('!'); ch <= '~'; ch++ {
		b.add(string(ch), TokenNormal)
	}
	for _, w := range words {
		for i := 1; i <= len(w); i++ {
			b.add(spaceMark+w[:i], TokenNormal)
		}
	}
	v.NaturalSize = len(v.Tokens) + len(fam.trailing)
	if c.VocabSize != 0 {
		if c.VocabSize < v.NaturalSize {
			return nil, cfgErr("text.vocab_size", "%d is smaller than the generated vocabulary (%d tokens)", c.VocabSize, v.NaturalSize)
		}
		addFiller(b, c.VocabSize-len(fam.trailing))
	}
	for _, s := range fam.trailing {
		if !b.add(s.text, s.typ) {
			return nil, fmt.Errorf("testmodel: duplicate special token %q", s.text) // a bug in family()
		}
	}
	id := func(text string) int {
		if text == "" {
			return -1
		}
		i := v.ID(text)
		if i < 0 {
			panic("testmodel: special token " + text + " missing from its family's vocabulary")
		}
		return i
	}
	v.BOS, v.EOS, v.EOT, v.UNK, v.PAD = id(fam.bos), id(fam.eos), id(fam.eot), id(fam.unk), id(fam.pad)
	return v, nil
}

// Filler syllables: consonant + vowel.
const (
	fillerConsonants = "bdfgklmnprstvz"
	fillerVowels     = "aeiou"
)

// addFiller appends deterministic pronounceable word pieces until the
// vocabulary holds n tokens: "▁a".."▁z", the syllables ("ba", "be", ...),
// "▁" + one syllable, then "▁" + two, three, ... syllables. Each longer piece
// is a concatenation of shorter ones, so the tokenizer can reach it.
func addFiller(b *vocabBuilder, n int) {
	var syl []string
	for _, c := range fillerConsonants {
		for _, v := range fillerVowels {
			syl = append(syl, string(c)+string(v))
		}
	}
	full := func() bool { return len(b.v.Tokens) >= n }
	for ch := 'a'; ch <= 'z' && !full(); ch++ {
		b.add(spaceMark+string(ch), TokenNormal)
	}
	for _, s := range syl {
		if full() {
			return
		}
		b.add(s, TokenNormal)
	}
	idx := []int{0} // odometer over syllables
	for !full() {
		piece := spaceMark
		for _, i := range idx {
			piece += syl[i]
		}
		b.add(piece, TokenNormal)
		// advance the odometer; grow it when it wraps
		k := len(idx) - 1
		for k >= 0 {
			idx[k]++
			if idx[k] < len(syl) {
				break
			}
			idx[k] = 0
			k--
		}
		if k < 0 {
			idx = append(idx, 0)
		}
	}
}
