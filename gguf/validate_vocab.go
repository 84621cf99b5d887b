package gguf

// Model validation, the tokenizer: special token ids, token arrays, byte
// tokens, the chat template key.

import (
	"fmt"
	"strings"
)

// specialTokenKeys are the ids llama_vocab::load reads with get_key<u32>.
var specialTokenKeys = []string{
	"bos_token_id", "eos_token_id", "eot_token_id", "eom_token_id",
	"unknown_token_id", "seperator_token_id", "padding_token_id", "mask_token_id",
	"fim_pre_token_id", "fim_suf_token_id", "fim_mid_token_id", "fim_pad_token_id",
	"fim_rep_token_id", "fim_sep_token_id",
	"prefix_token_id", "suffix_token_id", "middle_token_id",
}

// defaultSpecial gives llama.cpp's default ids per tokenizer model for the
// keys where a default is not "none" (-1).
var defaultSpecial = map[string]map[string]int64{
	"llama": {"bos_token_id": 1, "eos_token_id": 2, "unknown_token_id": 0},
	"bert":  {"bos_token_id": 101, "unknown_token_id": 100, "seperator_token_id": 102, "padding_token_id": 0, "mask_token_id": 103},
	"gpt2":  {"bos_token_id": 11, "eos_token_id": 11},
	"t5":    {"eos_token_id": 1, "unknown_token_id": 2, "padding_token_id": 0},
}

var tokenizerModels = map[string]bool{
	"no_vocab": true, "none": true, "llama": true, "bert": true, "gpt2": true,
	"t5": true, "rwkv": true, "plamo2": true,
}

// Token types (tokenizer.ggml.token_type).
const tokenTypeByte = 6

func isByteTokenText(s string) bool {
	if len(s) != 6 || !strings.HasPrefix(s, "<0x") || s[5] != '>' {
		return false
	}
	return isHex(s[3]) && isHex(s[4])
}

func isHex(b byte) bool {
	return '0' <= b && b <= '9' || 'a' <= b && b <= 'f' || 'A' <= b && b <= 'F'
}

// vocab checks the tokenizer keys as llama_vocab::load reads them and
// returns the number of tokens (-1 when unknown).
func (c *checker) vocab() int {
	const p = "tokenizer.ggml."
	model, ok := c.str(p+"model", true, false, false)
	if !ok {
		return -1
	}
	if !tokenizerModels[model] {
		c.add(ErrBadValue, false, p+"model", "", "unknown tokenizer %q", model)
		return -1
	}
	c.str(p+"pre", false, false, false)
	c.u32(p+"token_type_count", false, false, false)
	if model == "no_vocab" || model == "none" {
		return 0
	}
	if model == "gpt2" {
		if kv, ok := c.f.Get(p + "merges"); !ok {
			c.add(ErrMissingKey, false, p+"merges", "", "a gpt2 (BPE) tokenizer needs merges")
		} else if !kv.IsArray() || kv.ArrayType != ValueString {
			c.add(ErrKeyType, true, p+"merges", "", "type %s, want arr[str]", kv.TypeName())
		}
	}
	if model == "t5" {
		if kv, ok := c.f.Get(p + "precompiled_charsmap"); ok && !kv.IsArray() {
			c.add(ErrKeyType, true, p+"precompiled_charsmap", "", "type %s, want an array", kv.TypeName())
		}
	}
	c.boolean(p+"add_space_prefix", false, false, false)
	c.boolean(p+"remove_extra_whitespaces", false, false, false)

	kv, ok := c.f.Get(p + "tokens")
	if !ok {
		c.add(ErrMissingKey, false, p+"tokens", "", "no vocabulary")
		return -1
	}
	tokens, ok := kv.Value.([]string)
	if !ok {
		// gguf_get_arr_str asserts the string type
		c.add(ErrKeyType, kv.Type != ValueString, p+"tokens", "", "type %s, want arr[str]", kv.TypeName())
		return -1
	}
	n := len(tokens)

	checkArr := func(key string, types ...ValueType) []int32 {
		kv, ok := c.f.Get(key)
		if !ok {
			return nil
		}
		good := kv.IsArray()
		if good {
			good = false
			for _, t := range types {
				good = good || kv.ArrayType == t
			}
		}
		if !good {
			// read as raw memory of the expected type
			c.add(ErrTokenArray, true, key, "", "type %s, want arr[%s] of %d", kv.TypeName(), types[0], n)
			return nil
		}
		if kv.Len() != n {
			c.add(ErrTokenArray, kv.Len() < n, key, "", "%d elements for %d tokens", kv.Len(), n)
			return nil
		}
		switch v := kv.Value.(type) {
		case []int32:
			return v
		case []uint32:
			out := make([]int32, len(v))
			for i, x := range v {
				out[i] = int32(x)
			}
			return out
		}
		return nil
	}
	checkArr(p+"scores", ValueFloat32)
	types := checkArr(p+"token_type", ValueInt32, ValueUint32)

	// Duplicates (GGML_ASSERT(id_to_token.size() == token_to_id.size())),
	// with llama.cpp's renaming of empty tokens.
	seen := make(map[string]int, n)
	dups := 0
	for i, s := range tokens {
		if s == "" {
			s = fmt.Sprintf("[EMPTY_%d]", i)
		}
		if j, dup := seen[s]; dup {
			if dups < 3 {
				c.add(ErrDuplicateToken, true, p+"tokens", "", "token %d %q repeats token %d", i, s, j)
			}
			dups++
			continue
		}
		seen[s] = i
	}
	if dups > 3 {
		c.add(ErrDuplicateToken, true, p+"tokens", "", "%d duplicate tokens in all", dups)
	}

	if model == "llama" {
		// byte fallback: tokenizing a character no token covers throws
		// std::out_of_range out of llama_tokenize — an abort for a C
		// caller; vlm's binding catches it, so every prompt with such a
		// character fails (observed: TestAbortClassesUnchecked in
		// package mtmd). Not abort-class through vlm.
		missing := 0
		first := -1
		for b := 0; b < 256; b++ {
			if _, ok := seen[fmt.Sprintf("<0x%02X>", b)]; !ok {
				if first < 0 {
					first = b
				}
				missing++
			}
		}
		if missing > 0 {
			c.add(ErrByteTokens, false, p+"tokens", "", "%d of the 256 byte tokens <0x00>..<0xFF> missing (first <0x%02X>): tokenizing a character no token covers fails", missing, first)
		}
	}
	if model == "bert" && types != nil {
		// The WPM tokenizer has no byte tokens: llama_vocab::load asserts
		// on a byte-typed token of a bert vocabulary.
		for i, t := range types {
			if t == tokenTypeByte {
				c.add(ErrTokenArray, true, p+"token_type", "", "token %d %q is of type byte, which a bert (WPM) tokenizer does not have", i, tokens[i])
				break
			}
		}
	}
	if model == "gpt2" && types != nil {
		// llama_token_to_piece of a BPE vocabulary prints only normal,
		// user-defined and control tokens: a byte-typed token would print
		// as "" — text silently lost.
		for i, t := range types {
			if t == tokenTypeByte {
				c.add(ErrTokenArray, false, p+"token_type", "", "token %d %q is of type byte, which a gpt2 (BPE) tokenizer prints as \"\"", i, tokens[i])
				break
			}
		}
	}
	if model == "rwkv" {
		// The RWKV tokenizer needs "\n" as a token: without it, loading
		// loops and takes gigabytes.
		_, plain := seen["\n"]
		_, escaped := seen[`\n`] // stored escaped, as the RWKV tokenizer files write it
		if !plain && !escaped {
			c.add(ErrBadValue, true, p+"tokens", "", "an rwkv vocabulary needs a \"\\n\" token")
		}
	}
	if (model == "llama" || model == "t5") && types != nil {
		for i, t := range types {
			if t == tokenTypeByte && !isByteTokenText(tokens[i]) {
				// token_to_byte takes substr(3, 2) of the text
				c.add(ErrTokenArray, len(tokens[i]) < 3, p+"token_type", "", "token %d %q has the byte type but is not <0xHH>", i, tokens[i])
				break
			}
		}
	}

	// Special ids: a present id must be a u32. llama.cpp ignores an
	// out-of-range id with a warning and keeps its default (real files with
	// e.g. padding_token_id == n_vocab load fine), so that is only a problem
	// when the id it ends up using is outside the vocabulary.
	defs := defaultSpecial[model]
	ids := map[string]int64{}
	for _, name := range specialTokenKeys {
		key := p + name
		eff, hasDef := defs[name]
		if !hasDef {
			eff = -1
		}
		if id, ok := c.u32(key, false, false, false); ok {
			if int64(id) < int64(n) {
				eff = int64(id)
			} else if eff >= int64(n) {
				c.add(ErrSpecialToken, true, key, "", "id %d outside the %d tokens, and so is llama.cpp's fallback %d", id, n, eff)
				continue
			}
		}
		if eff >= int64(n) {
			c.add(ErrSpecialToken, true, key, "", "default id %d is outside the %d tokens; set the key", eff, n)
		}
		ids[name] = eff
	}
	for _, name := range []string{"add_bos_token", "add_eos_token", "add_sep_token"} {
		on, ok := c.boolean(p+name, false, false, false)
		if !ok || !on {
			continue
		}
		need := map[string]string{"add_bos_token": "bos_token_id", "add_eos_token": "eos_token_id", "add_sep_token": "seperator_token_id"}[name]
		if id, ok := ids[need]; ok && id < 0 {
			c.add(ErrSpecialToken, true, p+name, "", "set but there is no %s", need)
		}
	}
	if kv, ok := c.f.Get("tokenizer.chat_template"); ok && kv.Type != ValueString {
		c.add(ErrKeyType, false, "tokenizer.chat_template", "", "type %s, want str", kv.TypeName())
	}
	return n
}
