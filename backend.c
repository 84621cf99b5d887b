// Backends outlive the scheduler that uses them.
//
// The pinned module patches ggml_backend_sched_free to call every backend's
// iface.reset (ollama's patch 0020, "No-alloc mode"), but llama.cpp frees a
// context's backends before its scheduler (llama_context declares `sched`
// before `backends`; clip_ctx frees its backends in its destructor body, the
// scheduler member after). The scheduler then calls the CUDA backend's reset
// on a freed backend: llama_free and mtmd_free crash after GPU work (seen on
// an H200 at ggml_backend_cuda_reset+0x29, called from
// ggml_backend_sched_free). For the CPU backend, whose reset is NULL, it is
// a read of freed memory that happens to work.
//
// vlm_hook_devices replaces each device's init_backend so that every backend
// it creates gets vlm_backend_free as its free function. Inside the wrappers
// below (vlm_llama_free, ...) a backend's free is deferred until the wrapped
// call returns, when the scheduler is gone; outside them it frees at once.
#include <pthread.h>

#include "binding.h"
// ggml's internal backend structures, from the pinned module's ggml/src
// (found relative to its ggml/include folder, which is on the include path).
#include "../src/ggml-backend-impl.h"

// Hooks live in a list of nodes that are never freed, so that a pointer to
// one stays valid without the lock; the list grows with the devices.
struct vlm_device_hook {
    ggml_backend_dev_t dev;
    ggml_backend_t (*init_backend)(ggml_backend_dev_t dev, const char *params);
    void (*free)(ggml_backend_t backend); // the backends' own free, seen at the first init
    struct vlm_device_hook *next;
};

static struct vlm_device_hook *vlm_hooks;
static pthread_mutex_t vlm_hooks_mu = PTHREAD_MUTEX_INITIALIZER;

// Per thread: a wrapped call runs on one thread from start to end. The
// pending list grows as needed: falling back to an immediate free would be
// the crashing order this file exists to avoid.
static __thread int vlm_defer_depth;
static __thread ggml_backend_t *vlm_pending;
static __thread int vlm_n_pending;
static __thread int vlm_cap_pending;

static unsigned long vlm_deferred_frees; // counts deferred frees, for tests
static unsigned long vlm_leaked_backends; // backends not freed because memory for the list ran out

static struct vlm_device_hook *vlm_find_hook(ggml_backend_dev_t dev) {
    struct vlm_device_hook *h = NULL;
    pthread_mutex_lock(&vlm_hooks_mu);
    for (struct vlm_device_hook *it = vlm_hooks; it != NULL; it = it->next) {
        if (it->dev == dev) {
            h = it;
            break;
        }
    }
    pthread_mutex_unlock(&vlm_hooks_mu);
    return h;
}

static void vlm_free_now(ggml_backend_t backend) {
    struct vlm_device_hook *h = vlm_find_hook(backend->device);
    void (*fn)(ggml_backend_t) = NULL;
    if (h != NULL) {
        pthread_mutex_lock(&vlm_hooks_mu);
        fn = h->free;
        pthread_mutex_unlock(&vlm_hooks_mu);
    }
    if (fn != NULL) {
        fn(backend);
    }
}

static void vlm_backend_free(ggml_backend_t backend) {
    if (vlm_defer_depth == 0) {
        vlm_free_now(backend);
        return;
    }
    if (vlm_n_pending == vlm_cap_pending) {
        int cap = vlm_cap_pending > 0 ? 2 * vlm_cap_pending : 16;
        ggml_backend_t *p = realloc(vlm_pending, (size_t)cap * sizeof(*p));
        if (p == NULL) {
            // Leaking the backend is safe; freeing it before the
            // scheduler that uses it is not.
            __atomic_add_fetch(&vlm_leaked_backends, 1, __ATOMIC_RELAXED);
            return;
        }
        vlm_pending = p;
        vlm_cap_pending = cap;
    }
    vlm_pending[vlm_n_pending++] = backend;
}

static ggml_backend_t vlm_init_backend(ggml_backend_dev_t dev, const char *params) {
    struct vlm_device_hook *h = vlm_find_hook(dev);
    if (h == NULL) {
        return NULL;
    }
    ggml_backend_t b = h->init_backend(dev, params);
    if (b == NULL || b->device != dev || b->iface.free == NULL || b->iface.free == vlm_backend_free) {
        return b;
    }
    int ours = 0;
    pthread_mutex_lock(&vlm_hooks_mu);
    if (h->free == NULL) {
        h->free = b->iface.free;
    }
    ours = h->free == b->iface.free;
    pthread_mutex_unlock(&vlm_hooks_mu);
    if (ours) {
        b->iface.free = vlm_backend_free;
    }
    return b;
}

int vlm_hook_devices(void) {
    // VLM_BACKEND_DEFER=0 turns the fix off, to show what it fixes (tests).
    const char *off = getenv("VLM_BACKEND_DEFER");
    if (off != NULL && off[0] == '0') {
        return 0;
    }
    int added = 0;
    size_t n = ggml_backend_dev_count();
    for (size_t i = 0; i < n; i++) {
        ggml_backend_dev_t dev = ggml_backend_dev_get(i);
        if (dev == NULL || dev->iface.init_backend == NULL || dev->iface.init_backend == vlm_init_backend) {
            continue;
        }
        struct vlm_device_hook *h = calloc(1, sizeof(*h));
        if (h == NULL) {
            return -1; // out of memory: the caller reports it
        }
        h->dev = dev;
        h->init_backend = dev->iface.init_backend;
        pthread_mutex_lock(&vlm_hooks_mu);
        h->next = vlm_hooks;
        vlm_hooks = h;
        dev->iface.init_backend = vlm_init_backend;
        pthread_mutex_unlock(&vlm_hooks_mu);
        added++;
    }
    return added;
}

static void vlm_defer_begin(void) { vlm_defer_depth++; }

static void vlm_defer_end(void) {
    if (--vlm_defer_depth > 0) {
        return;
    }
    for (int i = 0; i < vlm_n_pending; i++) {
        vlm_free_now(vlm_pending[i]);
        __atomic_add_fetch(&vlm_deferred_frees, 1, __ATOMIC_RELAXED);
    }
    vlm_n_pending = 0;
}

unsigned long vlm_backend_deferred_frees(void) {
    return __atomic_load_n(&vlm_deferred_frees, __ATOMIC_RELAXED);
}

unsigned long vlm_backend_leaked(void) {
    return __atomic_load_n(&vlm_leaked_backends, __ATOMIC_RELAXED);
}

// For tests: n fake backends of a fake device are freed inside one wrapped
// call; *early counts those freed before the call ended, *total all of them.
static struct ggml_backend_device vlm_test_dev;
static __thread int vlm_test_freed, vlm_test_early;

static void vlm_test_free(ggml_backend_t b) {
    vlm_test_freed++;
    if (vlm_defer_depth > 0) {
        vlm_test_early++;
    }
    free(b);
}

int vlm_backend_test_deferral(int n, int *early, int *total) {
    if (vlm_find_hook(&vlm_test_dev) == NULL) {
        struct vlm_device_hook *h = calloc(1, sizeof(*h));
        if (h == NULL) {
            return -1;
        }
        h->dev = &vlm_test_dev;
        h->free = vlm_test_free;
        pthread_mutex_lock(&vlm_hooks_mu);
        h->next = vlm_hooks;
        vlm_hooks = h;
        pthread_mutex_unlock(&vlm_hooks_mu);
    }
    vlm_test_freed = vlm_test_early = 0;
    vlm_defer_begin();
    for (int i = 0; i < n; i++) {
        ggml_backend_t b = calloc(1, sizeof(*b));
        if (b == NULL) {
            vlm_defer_end();
            return -1;
        }
        b->device = &vlm_test_dev;
        vlm_backend_free(b);
    }
    vlm_defer_end();
    *early = vlm_test_early;
    *total = vlm_test_freed;
    return 0;
}

struct llama_context *vlm_llama_init_from_model(struct llama_model *model, struct llama_context_params params) {
    vlm_defer_begin();
    struct llama_context *c = llama_init_from_model(model, params);
    vlm_defer_end();
    return c;
}

void vlm_llama_free(struct llama_context *ctx) {
    vlm_defer_begin();
    llama_free(ctx);
    vlm_defer_end();
}

mtmd_context *vlm_mtmd_init_from_file(const char *mmproj_fname, const struct llama_model *text_model,
                                      const struct mtmd_context_params ctx_params) {
    vlm_defer_begin();
    mtmd_context *c = mtmd_init_from_file(mmproj_fname, text_model, ctx_params);
    vlm_defer_end();
    return c;
}

void vlm_mtmd_free(mtmd_context *ctx) {
    vlm_defer_begin();
    mtmd_free(ctx);
    vlm_defer_end();
}
