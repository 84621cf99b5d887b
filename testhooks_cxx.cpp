//go:build vlmtest

// testhooks_cxx.cpp: C++ hooks only the tests use (build tag vlmtest, which
// ./build.sh test sets); production builds do not contain them.
#include "testhooks.h"
#include "binding_guard.h"
#include "mtmd-helper.h"

#include <cstring>

using vlm_guard::guard;

extern "C" {

int32_t vlm_cxx_helper_eval_chunks(mtmd_context *ctx, struct llama_context *lctx, const mtmd_input_chunks *chunks,
                                   llama_pos n_past, llama_seq_id seq, int32_t n_batch, bool logits_last,
                                   llama_pos *new_n_past, float *logits, vlm_cxx_err *err) {
    return guard<int32_t>(err, -1, [&] {
        int32_t rc = mtmd_helper_eval_chunks(ctx, lctx, chunks, n_past, seq, n_batch, logits_last, new_n_past);
        if (rc == 0 && logits != nullptr) {
            const float *l = llama_get_logits_ith(lctx, -1);
            if (l == nullptr) {
                return -2;
            }
            const int n = llama_vocab_n_tokens(llama_model_get_vocab(llama_get_model(lctx)));
            std::memcpy(logits, l, static_cast<size_t>(n) * sizeof(float));
        }
        return rc;
    });
}

int32_t vlm_cxx_throw_test(const char *msg, vlm_cxx_err *err) {
    return guard<int32_t>(err, -7, [&]() -> int32_t { throw std::runtime_error(msg); });
}

} // extern "C"
