//go:build cuda

package vlm

// Built with -tags cuda: a CUDA device is required. Init (which every call
// of this package makes first) loads libggml-cuda.so from $VLM_BACKEND_PATH,
// beside the executable or from the checkout's third_party/build/cuda, and
// exits the program with a message naming the fix when no CUDA device is
// there: "built with -tags cuda but no CUDA device: run ./build.sh cuda and
// set VLM_BACKEND_PATH ...".
const requireCUDA = true
