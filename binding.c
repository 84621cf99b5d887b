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

