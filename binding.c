// C helpers declared in binding.h.
#include "binding.h"
#include "mtmd-helper.h"

// Defined in log.go (exported with //export).
extern void vlmGoLog(int level, char *text);

void vlm_log_trampoline(enum ggml_log_level level, const char *text, void *user_data) {
    (void)user_data;
    if (text == NULL) {
        return;
    }
    vlmGoLog((int)level, (char *)text);
}

void vlm_install_log_callbacks(void) {
    ggml_log_set(vlm_log_trampoline, NULL);
    llama_log_set(vlm_log_trampoline, NULL);
    mtmd_helper_log_set(vlm_log_trampoline, NULL);
}

// Defined in model.go (exported with //export).
extern bool vlmGoProgress(float progress, uintptr_t handle);

bool vlm_progress_trampoline(float progress, void *user_data) {
    return vlmGoProgress(progress, (uintptr_t)user_data);
}

bool vlm_abort_trampoline(void *data) {
    return data != NULL && __atomic_load_n((int *)data, __ATOMIC_RELAXED) != 0;
}

bool vlm_grammar_allows(struct llama_sampler *grammar, llama_token t) {
    llama_token_data d = {.id = t, .logit = 0.0f, .p = 0.0f};
    llama_token_data_array arr = {.data = &d, .size = 1, .selected = -1, .sorted = false};
    llama_sampler_apply(grammar, &arr);
    return arr.size == 1 && d.logit > -1e30f; // a rejected token gets -INFINITY
}
