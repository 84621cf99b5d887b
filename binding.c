// C helpers declared in binding.h.
#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include "binding.h"
#include "mtmd-helper.h"

// Defined in log.go (exported with //export). It gets whole lines.
extern void vlmGoLog(int level, char *text, int n);

// llama.cpp, ggml and mtmd write a line in pieces (GGML_LOG_LEVEL_CONT
// continues the previous piece). Each thread joins its own pieces, so that
// lines of contexts working on other threads cannot interleave with them,
// and hands Go whole lines: no lock is held while Go's handlers run.
#define VLM_LOG_MAX_LINE 65536

static __thread char *vlm_log_buf;
static __thread size_t vlm_log_len, vlm_log_cap;
static __thread int vlm_log_level = GGML_LOG_LEVEL_INFO;

static void vlm_log_flush(void) {
    if (vlm_log_len > 0) {
        vlmGoLog(vlm_log_level, vlm_log_buf, (int)vlm_log_len);
        vlm_log_len = 0;
    }
}

static void vlm_log_append(const char *p, size_t n) {
    if (vlm_log_len + n > vlm_log_cap) {
        size_t cap = vlm_log_cap > 0 ? vlm_log_cap : 256;
        while (cap < vlm_log_len + n) {
            cap *= 2;
        }
        char *b = realloc(vlm_log_buf, cap);
        if (b == NULL) {
            // Out of memory: hand over what there is, then the piece itself.
            vlm_log_flush();
            vlmGoLog(vlm_log_level, (char *)p, (int)n);
            return;
        }
        vlm_log_buf = b;
        vlm_log_cap = cap;
    }
    memcpy(vlm_log_buf + vlm_log_len, p, n);
    vlm_log_len += n;
}

void vlm_log_trampoline(enum ggml_log_level level, const char *text, void *user_data) {
    (void)user_data;
    if (text == NULL) {
        return;
    }
    if (level != GGML_LOG_LEVEL_CONT) {
        if (vlm_log_len > 0 && (int)level != vlm_log_level) {
            vlm_log_flush(); // a new line at another level ends the last one
        }
        vlm_log_level = (int)level;
    }
    const char *p = text;
    for (;;) {
        const char *nl = strchr(p, '\n');
        if (nl == NULL) {
            size_t n = strlen(p);
            if (n > 0) {
                vlm_log_append(p, n);
            }
            if (vlm_log_len >= VLM_LOG_MAX_LINE) {
                vlm_log_flush();
            }
            return;
        }
        if (vlm_log_len == 0) {
            vlmGoLog(vlm_log_level, (char *)p, (int)(nl - p)); // a whole line: no copy
        } else {
            vlm_log_append(p, (size_t)(nl - p));
            vlm_log_flush();
        }
        p = nl + 1;
    }
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

llama_token vlm_sampler_sample(struct llama_sampler *chain, struct llama_sampler *grammar, struct llama_context *ctx,
                               int32_t idx, int *status) {
    const float *logits = llama_get_logits_ith(ctx, idx);
    if (logits == NULL) {
        *status = 1;
        return -1;
    }
    const int n_vocab = llama_vocab_n_tokens(llama_model_get_vocab(llama_get_model(ctx)));
    llama_token_data *cur = malloc((size_t)n_vocab * sizeof(*cur));
    if (cur == NULL) {
        *status = 2;
        return -1;
    }
    for (llama_token t = 0; t < n_vocab; t++) {
        cur[t] = (llama_token_data){.id = t, .logit = logits[t], .p = 0.0f};
    }
    llama_token_data_array arr = {.data = cur, .size = (size_t)n_vocab, .selected = -1, .sorted = false};
    llama_sampler_apply(chain, &arr);
    if (arr.selected < 0 || (size_t)arr.selected >= arr.size) {
        free(cur);
        *status = 3;
        return -1;
    }
    llama_token tok = arr.data[arr.selected].id;
    free(cur);
    if (grammar != NULL && !vlm_grammar_allows(grammar, tok)) {
        *status = 4; // llama_sampler_accept would throw
        return tok;
    }
    llama_sampler_accept(chain, tok);
    *status = 0;
    return tok;
}

// For tests: threads write lines in pieces at the same time.
struct vlm_log_test_arg {
    int id, lines, pieces;
};

static void *vlm_log_test_thread(void *p) {
    struct vlm_log_test_arg *a = p;
    char piece[64];
    for (int l = 0; l < a->lines; l++) {
        snprintf(piece, sizeof piece, "t%d line %d:", a->id, l);
        vlm_log_trampoline(GGML_LOG_LEVEL_ERROR, piece, NULL);
        for (int k = 0; k < a->pieces; k++) {
            snprintf(piece, sizeof piece, " t%d.%d", a->id, k);
            vlm_log_trampoline(GGML_LOG_LEVEL_CONT, piece, NULL);
        }
        vlm_log_trampoline(GGML_LOG_LEVEL_CONT, "\n", NULL);
    }
    return NULL;
}

int vlm_log_test_threads(int threads, int lines, int pieces) {
    pthread_t tid[16];
    struct vlm_log_test_arg args[16];
    if (threads > 16) {
        threads = 16;
    }
    int started = 0;
    for (int i = 0; i < threads; i++) {
        args[i] = (struct vlm_log_test_arg){.id = i, .lines = lines, .pieces = pieces};
        if (pthread_create(&tid[i], NULL, vlm_log_test_thread, &args[i]) != 0) {
            break;
        }
        started++;
    }
    for (int i = 0; i < started; i++) {
        pthread_join(tid[i], NULL);
    }
    return started;
}
