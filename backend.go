package vlm

// GPU backends are ggml modules (libggml-cuda.so, built by ./build.sh cuda)
// that the program loads at run time with ggml_backend_load, so that building
// Go code never needs a GPU toolkit and one binary serves CPU-only and GPU
// machines.
//
// Exactly one copy of ggml's base library lives in the process: the one cgo
// compiled into the program. -rdynamic exports the program's C symbols, and
// the module is built without libggml-base.so (third_party/cuda/CMakeLists.txt),
// so its ggml_* references bind to the program's copy when it is loaded (with
// a second copy, the module's half of ggml would have its own globals: log
// callback, fp16 tables, locks).
//
// The teardown crash of GPU-NOTES.md had another cause: the pinned module's
// ggml_backend_sched_free calls each backend's reset after llama.cpp has
// freed the backends. backend.c makes backends outlive their scheduler.

/*
#cgo linux LDFLAGS: -rdynamic -ldl
#include <stdio.h>
#include "binding.h"
#ifndef _WIN32
#include <dlfcn.h>
#endif

// vlm_probe_module opens path as ggml_backend_load does (RTLD_NOW |
// RTLD_LOCAL) and returns 0, or 1 with dlerror()'s message in err. The handle
// stays open: ggml_backend_load opens the same file next and ggml never
// unloads a backend.
static int vlm_probe_module(const char *path, char *err, size_t n) {
#ifdef _WIN32
    (void)path; (void)err; (void)n;
    return 0;
#else
    void *h = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    if (h == NULL) {
        const char *e = dlerror();
        snprintf(err, n, "%s", e ? e : "dlopen failed");
        return 1;
    }
    return 0;
#endif
}
*/
import "C"

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"unsafe"
)

// BackendPathEnv names the environment variable with the folders (a list
// like PATH) that Init loads GPU backend modules from. When it is set, even
// to an empty value, only its folders are searched; when it is unset, Init
// looks beside the executable and, in a checkout of vlm, in
// third_party/build/cuda (where ./build.sh cuda writes libggml-cuda.so).
const BackendPathEnv = "VLM_BACKEND_PATH"

// checkoutEnv names the checkout of vlm in programs that build.sh builds
// with -trimpath (where compile-time paths are not absolute).
const checkoutEnv = "VLM_CHECKOUT"

var (
	// ErrBackend: a backend module exists but could not be loaded.
	ErrBackend = errors.New("vlm: GPU backend module could not be loaded")
	// ErrNoBackend: a folder holds no backend module (libggml-*.so).
	ErrNoBackend = errors.New("vlm: no GPU backend module")
	// ErrNoGPU: no GPU device is loaded.
	ErrNoGPU = errors.New("vlm: no GPU device")
)

// backends is the state of the loaded modules.
var backends struct {
	mu      sync.Mutex
	loaded  map[string]C.ggml_backend_reg_t // by absolute module path
	autoErr error                           // why the automatic load at Init failed, if it did
}

// LoadBackends loads the ggml backend modules (libggml-cuda.so, …) in dir —
// a folder, or the path of one module — and returns the devices they provide.
// A backend that is already loaded (from any file) is not loaded again; its
// devices are returned. Models and projectors loaded afterwards can use the
// devices (llama.LoadOptions.GPULayers, mtmd.Options.NoGPU), and Devices
// lists them with their free and total memory.
//
// Init already loads the modules in $VLM_BACKEND_PATH or beside the
// executable; LoadBackends is for programs that keep them elsewhere.
func LoadBackends(dir string) ([]Device, error) {
	Init()
	return loadBackends(dir)
}

// HasGPU reports whether a GPU device (discrete or integrated) is loaded:
// the condition for offloading a model's layers (GPULayers -1) and running
// the vision encoder on the GPU by default.
func HasGPU() bool {
	for _, d := range Devices() {
		if d.Type == DeviceGPU || d.Type == DeviceIntegrated {
			return true
		}
	}
	return false
}

// CheckGPU returns nil when a GPU device is loaded, else an error matching
// ErrNoGPU that says how to get one, including why loading a module at Init
// failed if it did.
func CheckGPU() error {
	if HasGPU() {
		return nil
	}
	return noGPUError("no GPU device is loaded")
}

// RequireCUDA is true in programs built with -tags cuda: their Init exits
// the program with a message unless a CUDA device is loaded.
const RequireCUDA = requireCUDA

func noGPUError(what string) error {
	backends.mu.Lock()
	autoErr := backends.autoErr
	backends.mu.Unlock()
	msg := what + ": run ./build.sh cuda and set " + BackendPathEnv + " to the folder with libggml-cuda.so (or put it next to the program)"
	if autoErr != nil {
		return fmt.Errorf("%w: %s; loading failed: %w", ErrNoGPU, msg, autoErr)
	}
	return fmt.Errorf("%w: %s", ErrNoGPU, msg)
}

// initBackends runs once, inside Init: it loads the modules found on the
// default search path and, with -tags cuda, exits unless a CUDA device is
// there. It must not call Init.
func initBackends() {
	var errs []error
	for _, dir := range backendSearchPath() {
		if _, err := loadBackends(dir.path); err != nil && !(dir.optional && errors.Is(err, ErrNoBackend)) {
			errs = append(errs, err)
			Log(slog.LevelWarn, err.Error())
		}
	}
	if err := hookDevices(); err != nil {
		errs = append(errs, err)
	}
	backends.mu.Lock()
	backends.autoErr = errors.Join(errs...)
	backends.mu.Unlock()
	if requireCUDA && !hasDevice(func(reg string, _ DeviceType) bool { return reg == "CUDA" }) {
		fmt.Fprintln(os.Stderr, noGPUError("built with -tags cuda but no CUDA device"))
		os.Exit(1)
	}
}

type searchDir struct {
	path     string
	optional bool // a missing folder or one without modules is no error
}

// backendSearchPath lists the folders Init loads modules from.
func backendSearchPath() []searchDir {
	if v, ok := os.LookupEnv(BackendPathEnv); ok {
		var dirs []searchDir
		for _, d := range filepath.SplitList(v) {
			if d != "" {
				dirs = append(dirs, searchDir{path: d})
			}
		}
		return dirs
	}
	var dirs []searchDir
	if exe, err := os.Executable(); err == nil {
		dirs = append(dirs, searchDir{path: filepath.Dir(exe), optional: true})
	}
	// In a checkout of vlm (tests, go run), the folder ./build.sh cuda
	// writes; this file's compile-time path names the module's root, or,
	// in a -trimpath build (build.sh's), VLM_CHECKOUT, which build.sh sets.
	if _, file, _, ok := runtime.Caller(0); ok && filepath.IsAbs(file) {
		dirs = append(dirs, searchDir{path: filepath.Join(filepath.Dir(file), "third_party", "build", "cuda"), optional: true})
	} else if root := os.Getenv(checkoutEnv); root != "" && filepath.IsAbs(root) {
		dirs = append(dirs, searchDir{path: filepath.Join(root, "third_party", "build", "cuda"), optional: true})
	}
	return dirs
}

// moduleBackend returns the backend a module file provides ("cuda" for
// libggml-cuda.so, "cpu" for libggml-cpu-haswell.so), or "" when name is not a
// backend module (libggml-base.so, libggml.so, other files).
func moduleBackend(name string) string {
	var ext string
	switch {
	case strings.HasSuffix(name, ".so"):
		ext = ".so"
	case strings.HasSuffix(name, ".dylib"):
		ext = ".dylib"
	default:
		return ""
	}
	rest, ok := strings.CutPrefix(strings.TrimSuffix(name, ext), "libggml-")
	if !ok || rest == "" || rest == "base" {
		return ""
	}
	backend, _, _ := strings.Cut(rest, "-")
	return backend
}

func loadBackends(path string) ([]Device, error) {
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, fmt.Errorf("loading GPU backends from %s: %w", path, err)
	}
	st, err := os.Stat(abs)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrNoBackend, err)
	}
	var files []string
	if st.IsDir() {
		entries, err := os.ReadDir(abs)
		if err != nil {
			return nil, fmt.Errorf("loading GPU backends from %s: %w", abs, err)
		}
		for _, e := range entries {
			if !e.IsDir() && moduleBackend(e.Name()) != "" {
				files = append(files, filepath.Join(abs, e.Name()))
			}
		}
		if len(files) == 0 {
			return nil, fmt.Errorf("%w in %s (want libggml-cuda.so: run ./build.sh cuda)", ErrNoBackend, abs)
		}
	} else {
		if moduleBackend(filepath.Base(abs)) == "" {
			return nil, fmt.Errorf("%w: %s is not a ggml backend module (want libggml-<backend>.so)", ErrNoBackend, abs)
		}
		files = []string{abs}
	}

	backends.mu.Lock()
	defer backends.mu.Unlock()
	defer hookDevices() //nolint:errcheck // backend.c: the new devices' backends outlive their schedulers; logged
	var devs []Device
	var errs []error
	for _, f := range files {
		reg, err := loadModuleLocked(f)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		n := int(C.ggml_backend_reg_dev_count(reg))
		if n == 0 {
			errs = append(errs, fmt.Errorf("%w: %s loaded but found no device (is the GPU visible and its driver loaded? the log above says more)", ErrNoGPU, f))
			continue
		}
		for i := 0; i < n; i++ {
			if d, ok := deviceInfo(C.ggml_backend_reg_dev_get(reg, C.size_t(i))); ok {
				devs = append(devs, d)
			}
		}
	}
	return devs, errors.Join(errs...)
}

// loadModuleLocked loads one module file, or returns the registered backend
// of the same name. backends.mu is held.
func loadModuleLocked(file string) (C.ggml_backend_reg_t, error) {
	if reg, ok := backends.loaded[file]; ok {
		return reg, nil
	}
	name := moduleBackend(filepath.Base(file))
	for i := 0; i < int(C.ggml_backend_reg_count()); i++ {
		reg := C.ggml_backend_reg_get(C.size_t(i))
		if strings.EqualFold(C.GoString(C.ggml_backend_reg_name(reg)), name) {
			return reg, nil // compiled in (the CPU, Metal) or loaded from another file
		}
	}
	cpath := C.CString(file)
	defer C.free(unsafe.Pointer(cpath))
	var buf [1024]C.char
	if C.vlm_probe_module(cpath, &buf[0], C.size_t(len(buf))) != 0 {
		msg := C.GoString(&buf[0])
		return nil, fmt.Errorf("%w: %s%s", ErrBackend, msg, loadHint(msg))
	}
	reg := C.ggml_backend_load(cpath)
	if reg == nil {
		return nil, fmt.Errorf("%w: ggml could not initialise %s (the log says why; a backend built for another ggml version is refused)", ErrBackend, file)
	}
	if backends.loaded == nil {
		backends.loaded = map[string]C.ggml_backend_reg_t{}
	}
	backends.loaded[file] = reg
	Log(slog.LevelInfo, fmt.Sprintf("loaded the %s backend from %s (%d devices)",
		C.GoString(C.ggml_backend_reg_name(reg)), file, int(C.ggml_backend_reg_dev_count(reg))))
	return reg, nil
}

// hookDevices makes the backends of devices registered so far outlive their
// schedulers (backend.c). It fails only when C memory runs out.
func hookDevices() error {
	if C.vlm_hook_devices() < 0 {
		err := fmt.Errorf("out of memory hooking backend devices: a backend of theirs may be freed before its scheduler: %w", ErrLoad)
		Log(slog.LevelError, err.Error())
		return err
	}
	return nil
}

// backendTestDeferral (for tests) frees n fake backends inside one wrapped
// call: early counts those freed before the call ended (must be 0), total
// all of them (must be n).
func backendTestDeferral(n int) (early, total int, err error) {
	var ce, ct C.int
	if C.vlm_backend_test_deferral(C.int(n), &ce, &ct) != 0 {
		return 0, 0, fmt.Errorf("out of C memory: %w", ErrInvalidArgument)
	}
	return int(ce), int(ct), nil
}

// deferredBackendFrees counts the backend frees that backend.c deferred
// until after a llama_free, mtmd_free or failed context creation.
func deferredBackendFrees() uint64 { return uint64(C.vlm_backend_deferred_frees()) }

// loadHint explains the usual reasons a module does not load.
func loadHint(msg string) string {
	switch {
	case strings.Contains(msg, "libcuda.so"):
		return " (the NVIDIA driver is not installed on this machine)"
	case strings.Contains(msg, "libcudart") || strings.Contains(msg, "libcublas"):
		return " (the CUDA runtime libraries are not on the library path: add the CUDA toolkit's lib64 folder to LD_LIBRARY_PATH)"
	case strings.Contains(msg, "undefined symbol: ggml_") || strings.Contains(msg, "undefined symbol: gguf_"):
		return " (the program does not export ggml's symbols: it must be linked with -rdynamic, which importing github.com/vlm-go/vlm adds on Linux)"
	}
	return ""
}

// deviceInfo describes dev with its position in ggml's device list. It does
// not call Init.
func deviceInfo(dev C.ggml_backend_dev_t) (Device, bool) {
	n := int(C.ggml_backend_dev_count())
	for i := 0; i < n; i++ {
		if C.ggml_backend_dev_get(C.size_t(i)) != dev {
			continue
		}
		var free, total C.size_t
		C.ggml_backend_dev_memory(dev, &free, &total)
		return Device{
			Index:       i,
			Name:        C.GoString(C.ggml_backend_dev_name(dev)),
			Description: C.GoString(C.ggml_backend_dev_description(dev)),
			Type:        DeviceType(C.ggml_backend_dev_type(dev)),
			FreeMemory:  uint64(free),
			TotalMemory: uint64(total),
		}, true
	}
	return Device{}, false
}

// hasDevice reports whether a device matches; reg is its backend's name
// ("CPU", "CUDA", "Metal"). It does not call Init.
func hasDevice(match func(reg string, typ DeviceType) bool) bool {
	n := int(C.ggml_backend_dev_count())
	for i := 0; i < n; i++ {
		dev := C.ggml_backend_dev_get(C.size_t(i))
		reg := C.GoString(C.ggml_backend_reg_name(C.ggml_backend_dev_backend_reg(dev)))
		if match(reg, DeviceType(C.ggml_backend_dev_type(dev))) {
			return true
		}
	}
	return false
}

// BackendNames returns the names of the registered backends, e.g.
// ["CPU"] or ["CUDA", "CPU"].
func BackendNames() []string {
	Init()
	var names []string
	for i := 0; i < int(C.ggml_backend_reg_count()); i++ {
		names = append(names, C.GoString(C.ggml_backend_reg_name(C.ggml_backend_reg_get(C.size_t(i)))))
	}
	return names
}
