// binding.h is vlm's one C header: it pulls in the pinned llama.cpp, mtmd and
// ggml headers (found through the include paths that build.sh exports) and
// declares the few C helpers the Go binding needs.
#ifndef VLM_BINDING_H
#define VLM_BINDING_H

#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>

#include "ggml-backend.h"
#include "llama.h"
#include "mtmd.h"

#ifdef __cplusplus
extern "C" {
#endif

// vlm_cxx_err reports a C++ exception caught by binding_cxx.cpp.
typedef struct {
    int thrown;
    char msg[256];
} vlm_cxx_err;

// vlm_log_trampoline joins the pieces of log lines from llama.cpp, ggml and
// mtmd per thread and forwards whole lines to the exported Go function
// vlmGoLog. It is installed as their log callback.
void vlm_log_trampoline(enum ggml_log_level level, const char *text, void *user_data);

// vlm_install_log_callbacks routes llama.cpp's, ggml's and mtmd's log output
// through vlm_log_trampoline.
void vlm_install_log_callbacks(void);

// vlm_progress_trampoline is installed as llama.cpp's model-load progress
// callback; user_data carries a runtime/cgo.Handle (as uintptr_t) to the Go
// callback, which returns false to cancel the load.
bool vlm_progress_trampoline(float progress, void *user_data);

// vlm_set_progress installs vlm_progress_trampoline with a cgo.Handle.
static inline void vlm_set_progress(struct llama_model_params *p, uintptr_t handle) {
    p->progress_callback = vlm_progress_trampoline;
    p->progress_callback_user_data = (void *)handle;
}

// vlm_abort_trampoline is installed as a context's abort callback; data
// points to a C int that Go sets to 1 to stop the running llama_decode.
bool vlm_abort_trampoline(void *data);

// vlm_grammar_allows reports whether a grammar sampler would let token t
// through in its current state: llama_sampler_accept throws (and so aborts
// the process) on a token the grammar rejects.
bool vlm_grammar_allows(struct llama_sampler *grammar, llama_token t);

// vlm_sampler_init_utf8_grammar (grammar_utf8.cpp) is
// llama_sampler_init_grammar whose output is also kept valid UTF-8: tokens
// whose bytes would make it invalid are banned before the grammar looks.
// NULL when the grammar does not parse.
struct llama_sampler *vlm_sampler_init_utf8_grammar(const struct llama_vocab *vocab, const char *grammar,
                                                    const char *root);

// vlm_sampler_wrap_utf8 (grammar_utf8.cpp) wraps a grammar sampler
// (taking ownership) so that its output is also kept valid UTF-8, as
// vlm_sampler_init_utf8_grammar does; NULL for a NULL inner.
struct llama_sampler *vlm_sampler_wrap_utf8(const struct llama_vocab *vocab, struct llama_sampler *inner);

// vlm_sampler_sample is llama_sampler_sample with its failures returned
// instead of aborting the process: *status is 0 (token sampled and
// accepted), 1 (no logits for idx), 2 (out of memory), 3 (no token selected)
// or 4 (the selected token is one the grammar rejects, e.g. every allowed
// token was banned; nothing is accepted), 5 (a sampler threw: see err),
// 6 (the logits hold NaN or infinities: the count is returned).
// It lives in binding_cxx.cpp, where exceptions are caught.
llama_token vlm_sampler_sample(struct llama_sampler *chain, struct llama_sampler *grammar, struct llama_context *ctx,
                               int32_t idx, int *status, vlm_cxx_err *err);

// backend.c: backends outlive the scheduler that uses them (see there).
// vlm_hook_devices hooks the devices registered so far and returns how many
// it added (-1: out of memory); the wrappers defer backend frees until the wrapped call returns.
int vlm_hook_devices(void);
unsigned long vlm_backend_deferred_frees(void);
unsigned long vlm_backend_leaked(void);
int vlm_backend_test_deferral(int n, int *early, int *total);
struct llama_context *vlm_llama_init_from_model(struct llama_model *model, struct llama_context_params params);
void vlm_llama_free(struct llama_context *ctx);
mtmd_context *vlm_mtmd_init_from_file(const char *mmproj_fname, const struct llama_model *text_model,
                                      const struct mtmd_context_params ctx_params);
void vlm_mtmd_free(mtmd_context *ctx);

// binding_cxx.cpp: the calls into llama.cpp and mtmd that can throw a C++
// exception, which must not cross into Go (std::terminate would end the
// process). Each returns what the wrapped call returns; when the call
// threw, err->thrown is 1 and err->msg holds what() (the return value is
// then the documented failure value).

int32_t vlm_cxx_tokenize(const struct llama_vocab *vocab, const char *text, int32_t text_len, llama_token *tokens,
                         int32_t n_tokens_max, bool add_special, bool parse_special, vlm_cxx_err *err);
int32_t vlm_cxx_token_to_piece(const struct llama_vocab *vocab, llama_token token, char *buf, int32_t length,
                               int32_t lstrip, bool special, vlm_cxx_err *err);
int32_t vlm_cxx_decode(struct llama_context *ctx, struct llama_batch batch, vlm_cxx_err *err);
int32_t vlm_cxx_mtmd_tokenize(mtmd_context *ctx, mtmd_input_chunks *output, const mtmd_input_text *text,
                              const mtmd_bitmap **bitmaps, size_t n_bitmaps, vlm_cxx_err *err);
int32_t vlm_cxx_mtmd_encode_chunk(mtmd_context *ctx, const mtmd_input_chunk *chunk, vlm_cxx_err *err);
// vlm_cxx_mtmd_encode_chunk_idle is vlm_cxx_mtmd_encode_chunk run on a new
// thread at the lowest CPU priority (Linux: SCHED_IDLE; the threads ggml
// starts for the encode inherit it), the caller waiting for it; *idle
// reports whether the priority was set. Elsewhere, or when no thread can be
// started, it encodes on the caller's thread at its priority.
int32_t vlm_cxx_mtmd_encode_chunk_idle(mtmd_context *ctx, const mtmd_input_chunk *chunk, bool *idle, vlm_cxx_err *err);
// vlm_idle_priority_works reports whether a new thread can give itself the
// lowest CPU priority (false on other systems than Linux, or where a
// sandbox refuses it).
bool vlm_idle_priority_works(void);
int32_t vlm_cxx_chat_apply_template(const char *tmpl, const struct llama_chat_message *chat, size_t n_msg,
                                    bool add_ass, char *buf, int32_t length, vlm_cxx_err *err);
void vlm_cxx_sampler_accept(struct llama_sampler *smpl, llama_token token, vlm_cxx_err *err);
// vlm_grammar_lazy is llama_sampler_init_grammar_lazy_patterns with what it
// throws (a trigger pattern std::regex rejects) caught into err, its output
// kept valid UTF-8 as vlm_sampler_init_utf8_grammar's.
struct llama_sampler *vlm_grammar_lazy(const struct llama_vocab *vocab, const char *grammar, const char *root,
                                       const char **patterns, size_t n_patterns, const llama_token *tokens,
                                       size_t n_tokens, vlm_cxx_err *err);
#ifdef __cplusplus
}
#endif

#endif // VLM_BINDING_H
