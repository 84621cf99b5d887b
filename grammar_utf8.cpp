// grammar_utf8.cpp: a grammar sampler that also keeps the output valid
// UTF-8. llama.cpp's grammar engine matches code points, and its decoder
// lets some byte sequences through that are not UTF-8: a byte token
// sequence such as E0 82 80 (an overlong U+0080) reaches the grammar as
// the code point it spells, so a character class cannot refuse it. The
// wrapper tracks the bytes accepted so far and bans, before the grammar
// looks, every token whose bytes would make the text invalid UTF-8
// (overlong forms, surrogates, code points above U+10FFFF, stray
// continuation bytes, a sequence cut short by a non-continuation byte).
#include "binding.h"

#include <cmath>
#include <cstdint>
#include <string>
#include <vector>

namespace {

// utf8_state is what the next bytes must be: need more continuation
// bytes, the next one in [lo, hi].
struct utf8_state {
    int need = 0;
    uint8_t lo = 0x80, hi = 0xBF;
};

// utf8_step feeds byte c; false when it makes the text invalid.
bool utf8_step(utf8_state &s, uint8_t c) {
    if (s.need > 0) {
        if (c < s.lo || c > s.hi) {
            return false;
        }
        s.need--;
        s.lo = 0x80;
        s.hi = 0xBF;
        return true;
    }
    if (c < 0x80) {
        return true;
    }
    if (c >= 0xC2 && c <= 0xDF) {
        s.need = 1;
    } else if (c == 0xE0) {
        s.need = 2, s.lo = 0xA0; // no overlong 3-byte forms
    } else if (c == 0xED) {
        s.need = 2, s.hi = 0x9F; // no surrogates
    } else if (c >= 0xE1 && c <= 0xEF) {
        s.need = 2;
    } else if (c == 0xF0) {
        s.need = 3, s.lo = 0x90; // no overlong 4-byte forms
    } else if (c >= 0xF1 && c <= 0xF3) {
        s.need = 3;
    } else if (c == 0xF4) {
        s.need = 3, s.hi = 0x8F; // nothing above U+10FFFF
    } else {
        return false; // 80-C1, F5-FF
    }
    return true;
}

struct utf8_grammar {
    const llama_vocab *vocab;
    llama_sampler *inner; // the grammar sampler, owned
    utf8_state state;
    std::vector<int8_t> from_clean; // per token, from a clean state: -1 not known yet, 0 invalid, 1 valid
};

// piece is the token's text as the grammar sees it (special tokens rendered).
std::string piece(const llama_vocab *vocab, llama_token t) {
    std::string out(64, '\0');
    int32_t n = llama_token_to_piece(vocab, t, out.data(), (int32_t)out.size(), 0, true);
    if (n < 0) {
        out.resize((size_t)-n);
        n = llama_token_to_piece(vocab, t, out.data(), (int32_t)out.size(), 0, true);
    }
    out.resize(n < 0 ? 0 : (size_t)n);
    return out;
}

bool feeds(utf8_state s, const std::string &p) {
    for (unsigned char c : p) {
        if (!utf8_step(s, c)) {
            return false;
        }
    }
    return true;
}

bool allowed(utf8_grammar *g, llama_token t) {
    if (t < 0 || (size_t)t >= g->from_clean.size() || llama_vocab_is_eog(g->vocab, t)) {
        return true; // the grammar decides
    }
    if (g->state.need == 0) {
        int8_t &k = g->from_clean[(size_t)t];
        if (k < 0) {
            k = feeds(utf8_state{}, piece(g->vocab, t)) ? 1 : 0;
        }
        return k == 1;
    }
    return feeds(g->state, piece(g->vocab, t));
}

const char *ug_name(const llama_sampler *) { return "vlm-utf8-grammar"; }

void ug_accept(llama_sampler *smpl, llama_token t) {
    auto *g = static_cast<utf8_grammar *>(smpl->ctx);
    llama_sampler_accept(g->inner, t);
    if (t >= 0 && (size_t)t < g->from_clean.size() && !llama_vocab_is_eog(g->vocab, t)) {
        for (unsigned char c : piece(g->vocab, t)) {
            if (!utf8_step(g->state, c)) {
                g->state = utf8_state{};
            }
        }
    }
}

void ug_apply(llama_sampler *smpl, llama_token_data_array *cur) {
    auto *g = static_cast<utf8_grammar *>(smpl->ctx);
    for (size_t i = 0; i < cur->size; i++) {
        if (!allowed(g, cur->data[i].id)) {
            cur->data[i].logit = -INFINITY;
        }
    }
    llama_sampler_apply(g->inner, cur);
}

void ug_reset(llama_sampler *smpl) {
    auto *g = static_cast<utf8_grammar *>(smpl->ctx);
    g->state = utf8_state{};
    llama_sampler_reset(g->inner);
}

llama_sampler *ug_clone(const llama_sampler *smpl);

void ug_free(llama_sampler *smpl) {
    auto *g = static_cast<utf8_grammar *>(smpl->ctx);
    llama_sampler_free(g->inner);
    delete g;
}

const llama_sampler_i ug_iface = {ug_name, ug_accept, ug_apply, ug_reset, ug_clone, ug_free};

llama_sampler *ug_clone(const llama_sampler *smpl) {
    const auto *g = static_cast<const utf8_grammar *>(smpl->ctx);
    llama_sampler *inner = llama_sampler_clone(g->inner);
    if (inner == nullptr) {
        return nullptr;
    }
    auto *c = new utf8_grammar(*g);
    c->inner = inner;
    return llama_sampler_init(&ug_iface, c);
}

} // namespace

extern "C" struct llama_sampler *vlm_sampler_init_utf8_grammar(const struct llama_vocab *vocab, const char *grammar,
                                                               const char *root) {
    llama_sampler *inner = llama_sampler_init_grammar(vocab, grammar, root);
    if (inner == nullptr) {
        return nullptr;
    }
    auto *g = new utf8_grammar{vocab, inner, utf8_state{}, std::vector<int8_t>((size_t)llama_vocab_n_tokens(vocab), -1)};
    return llama_sampler_init(&ug_iface, g);
}

extern "C" struct llama_sampler *vlm_sampler_wrap_utf8(const struct llama_vocab *vocab, struct llama_sampler *inner) {
    if (inner == nullptr) {
        return nullptr;
    }
    auto *g = new utf8_grammar{vocab, inner, utf8_state{}, std::vector<int8_t>((size_t)llama_vocab_n_tokens(vocab), -1)};
    return llama_sampler_init(&ug_iface, g);
}
