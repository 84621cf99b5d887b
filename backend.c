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

#define VLM_MAX_DEVICES 64
#define VLM_MAX_PENDING 64

struct vlm_device_hook {
    ggml_backend_dev_t dev;
    ggml_backend_t (*init_backend)(ggml_backend_dev_t dev, const char *params);
    void (*free)(ggml_backend_t backend); // the backends' own free, seen at the first init
};

static struct vlm_device_hook vlm_hooks[VLM_MAX_DEVICES];
static int vlm_n_hooks;
static pthread_mutex_t vlm_hooks_mu = PTHREAD_MUTEX_INITIALIZER;

// Per thread: a wrapped call runs on one thread from start to end.
static __thread int vlm_defer_depth;
static __thread ggml_backend_t vlm_pending[VLM_MAX_PENDING];
static __thread int vlm_n_pending;

static unsigned long vlm_deferred_frees; // counts deferred frees, for tests

static struct vlm_device_hook *vlm_find_hook(ggml_backend_dev_t dev) {
    struct vlm_device_hook *h = NULL;
    pthread_mutex_lock(&vlm_hooks_mu);
    for (int i = 0; i < vlm_n_hooks; i++) {
        if (vlm_hooks[i].dev == dev) {
            h = &vlm_hooks[i];
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
    if (vlm_defer_depth > 0 && vlm_n_pending < VLM_MAX_PENDING) {
        vlm_pending[vlm_n_pending++] = backend;
        return;
    }
    vlm_free_now(backend);
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
        pthread_mutex_lock(&vlm_hooks_mu);
        if (vlm_n_hooks < VLM_MAX_DEVICES) {
            vlm_hooks[vlm_n_hooks].dev = dev;
            vlm_hooks[vlm_n_hooks].init_backend = dev->iface.init_backend;
            vlm_hooks[vlm_n_hooks].free = NULL;
            vlm_n_hooks++;
            dev->iface.init_backend = vlm_init_backend;
            added++;
        }
        pthread_mutex_unlock(&vlm_hooks_mu);
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
