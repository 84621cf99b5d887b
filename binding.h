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

// vlm_log_trampoline forwards one log line from llama.cpp, ggml or mtmd into
// the exported Go function vlmGoLog. It is installed as their log callback.
void vlm_log_trampoline(enum ggml_log_level level, const char *text, void *user_data);

// vlm_install_log_callbacks routes llama.cpp's, ggml's and mtmd's log output
// through vlm_log_trampoline.
void vlm_install_log_callbacks(void);

#endif // VLM_BINDING_H
