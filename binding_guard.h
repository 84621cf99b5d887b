// binding_guard.h (C++ only): runs a call into llama.cpp or mtmd and turns
// a C++ exception it throws into an error in a vlm_cxx_err instead of
// letting it reach a cgo frame (std::terminate). Used by binding_cxx.cpp
// and, in test builds, testhooks_cxx.cpp.
#ifndef VLM_BINDING_GUARD_H
#define VLM_BINDING_GUARD_H

#include "binding.h"

#include <cstdio>
#include <exception>
#include <new>
#include <stdexcept>

namespace vlm_guard {

inline void caught(vlm_cxx_err *err, const char *what) {
    if (err == nullptr) {
        return;
    }
    err->thrown = 1;
    std::snprintf(err->msg, sizeof err->msg, "%s", what != nullptr ? what : "unknown C++ exception");
}

// guard runs f and returns its result, or fail after catching what it threw.
template <typename R, typename F> R guard(vlm_cxx_err *err, R fail, F f) {
    try {
        return f();
    } catch (const std::bad_alloc &) {
        caught(err, "std::bad_alloc (out of memory)");
    } catch (const std::exception &e) {
        caught(err, e.what());
    } catch (...) {
        caught(err, nullptr);
    }
    return fail;
}

} // namespace vlm_guard

#endif // VLM_BINDING_GUARD_H
