// testhooks.h: declarations of the hooks only the tests use (build tag
// vlmtest): testhooks.c, testhooks_cxx.cpp and testhooks.go.
#ifndef VLM_TESTHOOKS_H
#define VLM_TESTHOOKS_H

#include "binding.h"

#ifdef __cplusplus
extern "C" {
#endif

// vlm_log_test_threads (tests) runs threads that each write lines of
// pieces through vlm_log_trampoline at once; it returns the threads started.
int vlm_log_test_threads(int threads, int lines, int pieces);

// vlm_cxx_helper_eval_chunks is mtmd_helper_eval_chunks (llama.cpp's own
// evaluation of tokenized chunks into a context); on success it copies the
// last output's logits (n_vocab floats) into logits when that is not NULL.
int32_t vlm_cxx_helper_eval_chunks(mtmd_context *ctx, struct llama_context *lctx, const mtmd_input_chunks *chunks,
                                   llama_pos n_past, llama_seq_id seq, int32_t n_batch, bool logits_last,
                                   llama_pos *new_n_past, float *logits, vlm_cxx_err *err);
// vlm_cxx_throw_test (tests) throws std::runtime_error(msg) inside the
// wrapper machinery and returns -7 with err filled in.
int32_t vlm_cxx_throw_test(const char *msg, vlm_cxx_err *err);


#ifdef __cplusplus
}
#endif

#endif // VLM_TESTHOOKS_H
