#!/usr/bin/env bash
# third_party/cuda/build.sh — build ggml's CUDA backend as a runtime-loadable
# module (libggml-cuda.so) from the pinned module's ggml sources.
#
#   third_party/cuda/build.sh GGML_SRC OUTPUT_DIR
#
# GGML_SRC is <github.com/ollama/ollama module>/ml/backend/ggml/ggml (or a copy
# of it); OUTPUT_DIR receives libggml-cuda.so, its CMake build tree is
# OUTPUT_DIR/cmake. ./build.sh cuda finds GGML_SRC with the go command and
# calls this script; scripts/gpu-check.sh calls it on machines without Go.
# Needs CMake ≥ 3.18 and the CUDA toolkit (nvcc); Ninja if present.
#
# Environment:
#   VLM_CUDA_ARCH     CUDA architecture(s) to compile for, e.g. 90 or "86;89"
#                     (default: the local GPUs', from nvidia-smi)
#   VLM_BACKEND       cuda (default), or cpu: ggml's CPU backend built the same
#                     way, to test the loading mechanism without a GPU
#   VLM_CMAKE_ARGS    more arguments for the CMake configure step
#   VLM_JOBS          parallel compile jobs (default: all cores)
set -euo pipefail

die() { echo "build.sh cuda: $*" >&2; exit 1; }

[ $# -eq 2 ] || die "usage: third_party/cuda/build.sh GGML_SRC OUTPUT_DIR"
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
src=$1
out=$2
backend=${VLM_BACKEND:-cuda}

[ -f "$src/src/CMakeLists.txt" ] && [ -f "$src/src/ggml-$backend/CMakeLists.txt" ] ||
  die "$src is not ggml's source tree with a $backend backend (want <github.com/ollama/ollama module>/ml/backend/ggml/ggml)"

command -v cmake >/dev/null 2>&1 ||
  die "CMake is not installed: install CMake 3.18 or newer (e.g. 'apt-get install cmake', or 'pip install cmake')"

args=()
if [ "$backend" = cuda ]; then
  nvcc=${CUDACXX:-}
  if [ -z "$nvcc" ]; then
    if command -v nvcc >/dev/null 2>&1; then
      nvcc=$(command -v nvcc)
    elif [ -x /usr/local/cuda/bin/nvcc ]; then
      nvcc=/usr/local/cuda/bin/nvcc
    else
      die "the CUDA toolkit's compiler nvcc is not installed (not in PATH nor /usr/local/cuda/bin): install the CUDA toolkit (https://developer.nvidia.com/cuda-downloads, or 'apt-get install nvidia-cuda-toolkit'), or set CUDACXX to nvcc's path"
    fi
  fi
  [ -x "$nvcc" ] || die "CUDACXX=$nvcc is not an executable nvcc"
  arch=${VLM_CUDA_ARCH:-}
  if [ -z "$arch" ]; then
    command -v nvidia-smi >/dev/null 2>&1 ||
      die "no NVIDIA driver here (nvidia-smi not found), so the GPU's architecture is unknown: install the driver, or cross-build with VLM_CUDA_ARCH=90 (H100/H200), 89 (RTX 40xx, L4), 86 (RTX 30xx, A10), 80 (A100)"
    caps=$(nvidia-smi --query-gpu=compute_cap --format=csv,noheader 2>&1) ||
      die "nvidia-smi could not query the GPU (is the NVIDIA driver loaded?): $caps — or cross-build with VLM_CUDA_ARCH=90"
    # "9.0" → "90"; several GPUs → "86;90".
    arch=$(printf '%s\n' "$caps" | tr -d ' .' | grep -E '^[0-9]+$' | sort -u | paste -sd ';' -)
    [ -n "$arch" ] || die "nvidia-smi reported no compute capability ('$caps'): set VLM_CUDA_ARCH, e.g. VLM_CUDA_ARCH=90"
  fi
  case "$arch" in
    *[!0-9\;a-z-]*) die "VLM_CUDA_ARCH='$arch': want CUDA architectures like 90 or '86;89'" ;;
  esac
  echo "build.sh cuda: nvcc $("$nvcc" --version | sed -n 's/.*release \([0-9.]*\).*/\1/p'), CUDA architecture(s) $arch" >&2
  args+=("-DCMAKE_CUDA_COMPILER=$nvcc" "-DCMAKE_CUDA_ARCHITECTURES=$arch")
fi

gen=()
if command -v ninja >/dev/null 2>&1; then
  gen=(-G Ninja)
fi
jobs=${VLM_JOBS:-$(getconf _NPROCESSORS_ONLN 2>/dev/null || echo 4)}

mkdir -p "$out"
out=$(cd "$out" && pwd)
src=$(cd "$src" && pwd)
build="$out/cmake"
# A build tree configured from another source path cannot be reused.
if [ -f "$build/CMakeCache.txt" ] && ! grep -qxF "GGML_SRC:PATH=$src" "$build/CMakeCache.txt"; then
  rm -rf "$build"
fi

echo "build.sh cuda: configuring ggml-$backend from $src" >&2
# shellcheck disable=SC2086 # VLM_CMAKE_ARGS is a list of arguments
cmake -S "$here" -B "$build" "${gen[@]}" -DCMAKE_BUILD_TYPE=Release \
  "-DGGML_SRC=$src" "-DVLM_BACKEND=$backend" "-DVLM_OUTPUT_DIR=$out" "${args[@]}" ${VLM_CMAKE_ARGS:-} ||
  die "CMake could not configure the $backend backend (see above)"

echo "build.sh cuda: compiling ggml-$backend with $jobs jobs (CUDA: about 3.5 minutes on 16 cores, much longer on few)" >&2
start=$(date +%s)
cmake --build "$build" --target "ggml-$backend" -j "$jobs" || die "compiling the $backend backend failed (see above)"
lib="$out/libggml-$backend.so"
[ -f "$lib" ] || die "the build finished but $lib is missing"
echo "build.sh cuda: built $lib ($(du -h "$lib" | cut -f1)) in $(( $(date +%s) - start ))s" >&2

if command -v readelf >/dev/null 2>&1; then
  needed=$(readelf -d "$lib" | sed -n 's/.*(NEEDED).*\[\(.*\)\]/\1/p' | paste -sd ' ' -)
  echo "build.sh cuda: it needs: $needed" >&2
  case " $needed " in
    *" libggml-base.so"*) echo "build.sh cuda: warning: it links libggml-base.so (VLM_LINK_GGML_BASE=ON): a second copy of ggml in the process" >&2 ;;
  esac
fi
echo "build.sh cuda: load it with VLM_BACKEND_PATH=$out (or put it next to your program)" >&2
