//go:build vlmtest

// testhooks.c: C hooks only the tests use (build tag vlmtest, which
// ./build.sh test sets); production builds do not contain them.
#include "testhooks.h"

#include <pthread.h>
#include <stdio.h>

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
