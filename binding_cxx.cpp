// binding_cxx.cpp: the binding's calls into llama.cpp and mtmd that can
// throw a C++ exception (a tokenizer's std::out_of_range on a character no
// token covers, a corrupt T5 charsmap, a grammar's "unexpected empty
// grammar stack", a graph builder's std::runtime_error). An exception that
// reaches a cgo frame calls std::terminate and ends the process; here each
// is caught and returned as an error. See binding.h.
#include "binding.h"
#include "binding_guard.h"
#include "mtmd-helper.h"

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <new>
#include <stdexcept>

#if defined(__linux__)
#include <pthread.h>
#include <sched.h>
#endif

using vlm_guard::guard;

extern "C" {

int32_t vlm_cxx_tokenize(const struct llama_vocab *vocab, const char *text, int32_t text_len, llama_token *tokens,
                         int32_t n_tokens_max, bool add_special, bool parse_special, vlm_cxx_err *err) {
    return guard<int32_t>(err, INT32_MIN, [&] {
        return llama_tokenize(vocab, text, text_len, tokens, n_tokens_max, add_special, parse_special);
    });
}

int32_t vlm_cxx_token_to_piece(const struct llama_vocab *vocab, llama_token token, char *buf, int32_t length,
                               int32_t lstrip, bool special, vlm_cxx_err *err) {
    return guard<int32_t>(err, INT32_MIN, [&] { return llama_token_to_piece(vocab, token, buf, length, lstrip, special); });
}

int32_t vlm_cxx_decode(struct llama_context *ctx, struct llama_batch batch, vlm_cxx_err *err) {
    return guard<int32_t>(err, -3, [&] { return llama_decode(ctx, batch); });
}

int32_t vlm_cxx_mtmd_tokenize(mtmd_context *ctx, mtmd_input_chunks *output, const mtmd_input_text *text,
                              const mtmd_bitmap **bitmaps, size_t n_bitmaps, vlm_cxx_err *err) {
    return guard<int32_t>(err, 2, [&] { return mtmd_tokenize(ctx, output, text, bitmaps, n_bitmaps); });
}

int32_t vlm_cxx_mtmd_encode_chunk(mtmd_context *ctx, const mtmd_input_chunk *chunk, vlm_cxx_err *err) {
    return guard<int32_t>(err, 1, [&] { return mtmd_encode_chunk(ctx, chunk); });
}

#if defined(__linux__)
namespace {
struct idle_encode {
    mtmd_context *ctx;
    const mtmd_input_chunk *chunk;
    vlm_cxx_err *err;
    int32_t rc;
    bool idle;
};

void *idle_encode_main(void *p) {
    auto *a = static_cast<idle_encode *>(p);
    struct sched_param sp = {};
    a->idle = pthread_setschedparam(pthread_self(), SCHED_IDLE, &sp) == 0;
    a->rc = vlm_cxx_mtmd_encode_chunk(a->ctx, a->chunk, a->err);
    return nullptr;
}
} // namespace
#endif

bool vlm_idle_priority_works(void) {
#if defined(__linux__)
    idle_encode a = {nullptr, nullptr, nullptr, 0, false};
    pthread_t t;
    if (pthread_create(&t, nullptr, [](void *p) -> void * {
            auto *a = static_cast<idle_encode *>(p);
            struct sched_param sp = {};
            a->idle = pthread_setschedparam(pthread_self(), SCHED_IDLE, &sp) == 0;
            return nullptr;
        }, &a) != 0) {
        return false;
    }
    pthread_join(t, nullptr);
    return a.idle;
#else
    return false;
#endif
}

int32_t vlm_cxx_mtmd_encode_chunk_idle(mtmd_context *ctx, const mtmd_input_chunk *chunk, bool *idle, vlm_cxx_err *err) {
    *idle = false;
#if defined(__linux__)
    idle_encode a = {ctx, chunk, err, 1, false};
    pthread_t t;
    if (pthread_create(&t, nullptr, idle_encode_main, &a) == 0) {
        pthread_join(t, nullptr);
        *idle = a.idle;
        return a.rc;
    }
#endif
    return vlm_cxx_mtmd_encode_chunk(ctx, chunk, err);
}

int32_t vlm_cxx_chat_apply_template(const char *tmpl, const struct llama_chat_message *chat, size_t n_msg,
                                    bool add_ass, char *buf, int32_t length, vlm_cxx_err *err) {
    return guard<int32_t>(err, -1, [&] { return llama_chat_apply_template(tmpl, chat, n_msg, add_ass, buf, length); });
}

struct llama_sampler *vlm_grammar_lazy(const struct llama_vocab *vocab, const char *grammar, const char *root,
                                       const char **patterns, size_t n_patterns, const llama_token *tokens,
                                       size_t n_tokens, vlm_cxx_err *err) {
    struct llama_sampler *inner = guard<struct llama_sampler *>(err, nullptr, [&] {
        return llama_sampler_init_grammar_lazy_patterns(vocab, grammar, root, patterns, n_patterns, tokens, n_tokens);
    });
    return vlm_sampler_wrap_utf8(vocab, inner);
}

void vlm_cxx_sampler_accept(struct llama_sampler *smpl, llama_token token, vlm_cxx_err *err) {
    guard<int>(err, 0, [&] {
        llama_sampler_accept(smpl, token);
        return 0;
    });
}

bool vlm_grammar_allows(struct llama_sampler *grammar, llama_token t) {
    llama_token_data d;
    d.id = t;
    d.logit = 0.0f;
    d.p = 0.0f;
    llama_token_data_array arr;
    arr.data = &d;
    arr.size = 1;
    arr.selected = -1;
    arr.sorted = false;
    llama_sampler_apply(grammar, &arr);
    return arr.size == 1 && d.logit > -1e30f; // a rejected token gets -INFINITY
}

llama_token vlm_sampler_sample(struct llama_sampler *chain, struct llama_sampler *grammar, struct llama_context *ctx,
                               int32_t idx, int *status, vlm_cxx_err *err) {
    const float *logits = llama_get_logits_ith(ctx, idx);
    if (logits == nullptr) {
        *status = 1;
        return -1;
    }
    const int n_vocab = llama_vocab_n_tokens(llama_model_get_vocab(llama_get_model(ctx)));
    llama_token_data *cur = static_cast<llama_token_data *>(std::malloc(static_cast<size_t>(n_vocab) * sizeof(*cur)));
    if (cur == nullptr) {
        *status = 2;
        return -1;
    }
    int nonfinite = 0;
    for (llama_token t = 0; t < n_vocab; t++) {
        cur[t].id = t;
        cur[t].logit = logits[t];
        cur[t].p = 0.0f;
        nonfinite += !std::isfinite(logits[t]);
    }
    if (nonfinite > 0) {
        std::free(cur);
        *status = 6;
        return nonfinite;
    }
    llama_token_data_array arr;
    arr.data = cur;
    arr.size = static_cast<size_t>(n_vocab);
    arr.selected = -1;
    arr.sorted = false;
    int st = guard<int>(err, 5, [&] {
        llama_sampler_apply(chain, &arr);
        if (arr.selected < 0 || static_cast<size_t>(arr.selected) >= arr.size) {
            return 3;
        }
        llama_token tok = arr.data[arr.selected].id;
        if (grammar != nullptr && !vlm_grammar_allows(grammar, tok)) {
            return 4; // llama_sampler_accept would throw
        }
        return 0;
    });
    llama_token tok = (st == 0 || st == 4) ? arr.data[arr.selected].id : -1;
    std::free(cur);
    if (st == 0) {
        st = guard<int>(err, 5, [&] {
            llama_sampler_accept(chain, tok);
            return 0;
        });
    }
    *status = st;
    return tok;
}

} // extern "C"
