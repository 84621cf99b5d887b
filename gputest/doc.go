// Package gputest holds vlm's GPU checks: tests and benchmarks only, no API.
//
// Its tests compare CPU and GPU results on a tiny model and run many
// load → encode → generate → free cycles on the GPU; its benchmarks measure
// prefill, decode and image encoding on SmolVLM-256M shapes, on the CPU and
// on the GPU. Where no GPU backend loads, the GPU tests and benchmarks skip
// and say how to get one:
//
//	./build.sh cuda                                      # builds third_party/build/cuda/libggml-cuda.so
//	./build.sh go test ./gputest                         # finds it in the checkout
//	./build.sh go test ./gputest -run '^$' -bench SmolVLM/gpu
//	VLM_BACKEND_PATH= ./build.sh go test ./gputest -run '^$' -bench SmolVLM/cpu
//
// CPU numbers come from a process without a GPU backend (VLM_BACKEND_PATH
// set but empty): with one loaded, llama.cpp moves large CPU batches to the
// GPU. scripts/gpu-check.sh runs all of it on a machine without Go, from test
// binaries compiled elsewhere.
package gputest
