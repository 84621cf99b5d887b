#!/usr/bin/env bash
# scripts/gpu-check.sh — vlm's GPU check, in one command, for a machine with an
# NVIDIA GPU, the CUDA toolkit and CMake, and no Go.
#
#   scripts/gpu-check.sh prepare     here, with Go: compile the test binaries
#                                    (x86-64-v3) and copy ggml's sources into
#                                    third_party/build/gpu-check/ (carry that folder)
#   scripts/gpu-check.sh [OUTDIR]    there: build libggml-cuda.so from the copied
#                                    sources, check which copy of ggml it binds to,
#                                    run the GPU tests (CPU vs GPU logits, 200
#                                    load→encode→generate→free cycles) and the
#                                    benchmarks (SmolVLM-256M shapes, Q8_0, CPU vs
#                                    GPU), and print a table. OUTDIR (default $OUT,
#                                    else third_party/build/gpu-check-out) gets
#                                    summary.txt, system.txt, cuda-build.log,
#                                    bindings.txt, tests.log, bench.txt, prepare.log.
#
# Exit status: 0 when the build, every test and both benchmark runs passed.
# Environment: VLM_CUDA_ARCH (default: the GPU's), VLM_GPU_CYCLES (default 200),
# VLM_BENCH_CPU_TIMES / VLM_BENCH_GPU_TIMES (benchmark iterations: 3 / 30),
# VLM_BENCH_THREADS (CPU threads in the benchmarks), VLM_GPU_DIAG=1 (also run
# teardown variants, with and without vlm's fix, into diag.txt; resolves a
# crash's PC to a symbol with scripts/resolve-pc.py).
set -uo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
pack="$root/third_party/build/gpu-check"
cuda_dir="$root/third_party/build/cuda"

prepare() {
  set -e
  cd "$root"
  command -v go >/dev/null 2>&1 || { echo "gpu-check: prepare needs Go" >&2; exit 1; }
  mkdir -p "$pack/bin"
  echo "gpu-check: compiling test binaries for x86-64-v3 (a separate build cache entry: minutes the first time)" >&2
  VLM_PORTABLE=1 ./build.sh go test -c -ldflags='-s -w' -o "$pack/bin/gpu.test" ./gputest
  VLM_PORTABLE=1 ./build.sh go test -c -ldflags='-s -w' -o "$pack/bin/vlm.test" .
  VLM_PORTABLE=1 ./build.sh go build -tags cuda -ldflags='-s -w' -o "$pack/bin/vlm-info-cuda" ./cmd/vlm-info
  local src
  src="$(go list -m -f '{{.Dir}}' github.com/ollama/ollama)/ml/backend/ggml/ggml"
  rm -rf "$pack/ggml"
  cp -r "$src" "$pack/ggml"
  chmod -R u+w "$pack/ggml"
  # Only ggml's base sources and the CUDA backend are compiled there.
  rm -rf "$pack/ggml/src/ggml-vulkan" "$pack/ggml/src/ggml-metal"
  # The copy is for CMake only: drop the module's cgo Go files, and make
  # third_party/build a module of its own so that `go test ./...` in the
  # checkout does not walk into it.
  find "$pack/ggml" -name '*.go' -delete
  printf 'module vlm-build-outputs // keeps go ./... out of build outputs\n' >"$root/third_party/build/go.mod"
  du -sh "$pack" "$pack"/bin/* "$pack/ggml" >&2
  echo "gpu-check: carry third_party/build/gpu-check, then run scripts/gpu-check.sh on the GPU machine" >&2
}

if [ "${1:-}" = prepare ]; then
  prepare
  exit
fi

out=${1:-${OUT:-$root/third_party/build/gpu-check-out}}
mkdir -p "$out"
out=$(cd "$out" && pwd)
summary="$out/summary.txt"
: >"$summary"
say() { echo "gpu-check: $*" | tee -a "$summary" >&2; }
status=0
fail() { say "FAIL: $*"; status=1; }

bin="$pack/bin"
[ -x "$bin/gpu.test" ] && [ -d "$pack/ggml/src" ] ||
  { echo "gpu-check: $pack is missing the test binaries or ggml's sources: run 'scripts/gpu-check.sh prepare' where Go is, and carry that folder" >&2; exit 1; }
cache=$(mktemp -d "${TMPDIR:-/tmp}/vlm-models.XXXXXX")
work=$(mktemp -d "${TMPDIR:-/tmp}/vlm-gpu-check.XXXXXX")
export VLM_TESTMODEL_CACHE="$cache"

# The CUDA runtime libraries the module needs, where the toolkit keeps them.
nvcc=$(command -v nvcc || echo /usr/local/cuda/bin/nvcc)
for d in "$(dirname "$nvcc")/../lib64" "$(dirname "$nvcc")/../targets/x86_64-linux/lib"; do
  [ -d "$d" ] && export LD_LIBRARY_PATH="$(cd "$d" && pwd)${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
done

{
  echo "== date"; date -u
  echo "== nvidia-smi"; nvidia-smi 2>&1
  echo "== nvcc"; "$nvcc" --version 2>&1
  echo "== cmake"; cmake --version 2>&1 | head -1
  echo "== cpu"; nproc; grep -m1 'model name' /proc/cpuinfo
  echo "== binaries"; ls -l "$bin"
} >"$out/system.txt" 2>&1
gpu_name=$(nvidia-smi --query-gpu=name --format=csv,noheader 2>/dev/null | head -1)
say "GPU: ${gpu_name:-none found}; $(nproc) CPU cores"

# 1. The benchmark model is written while the backend compiles.
say "writing the benchmark model (smolvlm-256m, Q8_0) into $cache in the background"
( VLM_BENCH_PREPARE=1 VLM_BACKEND_PATH= timeout 400 "$bin/gpu.test" -test.v -test.count=1 \
    -test.run '^TestPrepareBenchModel$' >"$out/prepare.log" 2>&1 ) &
prep_pid=$!

# 2. The CUDA backend, from the carried copy of the pinned module's ggml.
say "building libggml-cuda.so (third_party/cuda/build.sh)"
start=$(date +%s)
if timeout 420 bash "$root/third_party/cuda/build.sh" "$pack/ggml" "$cuda_dir" >"$out/cuda-build.log" 2>&1; then
  say "built $(du -h "$cuda_dir/libggml-cuda.so" | cut -f1) in $(( $(date +%s) - start ))s"
else
  fail "the CUDA build failed after $(( $(date +%s) - start ))s (cuda-build.log)"
  tail -20 "$out/cuda-build.log" >&2
fi
wait "$prep_pid" || fail "writing the benchmark model (prepare.log)"
lib="$cuda_dir/libggml-cuda.so"

# 3. Which copy of ggml the module uses: it must not need libggml-base.so,
# and its ggml_*/gguf_* references must bind to the program.
if [ -f "$lib" ]; then
  {
    echo "== NEEDED entries of libggml-cuda.so"
    readelf -d "$lib" | grep NEEDED
    echo "== ldd libggml-cuda.so"
    ldd "$lib"
    nm -D --undefined-only "$lib" | awk '$2 ~ /^(ggml|gguf)_/ {print $2}' | sort -u >"$work/wanted"
    nm -D --defined-only "$bin/gpu.test" | awk '{print $3}' | sort -u >"$work/exported"
    echo "== ggml/gguf symbols the module takes from the process: $(wc -l <"$work/wanted"); exported by gpu.test: $(comm -12 "$work/wanted" "$work/exported" | wc -l); missing:"
    comm -23 "$work/wanted" "$work/exported"
    echo "== LD_DEBUG=bindings of gpu.test loading the module: where the module's ggml/gguf references bind"
    VLM_BACKEND_PATH="$cuda_dir" LD_DEBUG=bindings LD_DEBUG_OUTPUT="$work/ld" \
      timeout 120 "$bin/gpu.test" -test.run '^TestGPUDevices$' -test.v >"$work/ld-run.log" 2>&1
    echo "(run exit status $?)"
    cat "$work"/ld.* 2>/dev/null | grep 'binding file [^ ]*libggml-cuda.so' |
      grep -E "symbol \`(ggml|gguf)_" | sed 's/.* to \([^ ]*\) .*/\1/' | sort | uniq -c | tee "$work/bound"
    echo "== objects named libggml-base in the binding log (want none): $(cat "$work"/ld.* 2>/dev/null | grep -c 'libggml-base')"
    echo "== a few bindings"
    cat "$work"/ld.* 2>/dev/null | grep 'binding file [^ ]*libggml-cuda.so' |
      grep -E "symbol \`(ggml_nbytes|ggml_log_internal|ggml_backend_buffer_init|ggml_abort)'" | sed 's/^ *[0-9]*: *//' | sort -u
    echo "== the test's output"
    cat "$work/ld-run.log"
  } >"$out/bindings.txt" 2>&1
  grep -q 'libggml-base' <(readelf -d "$lib") && fail "libggml-cuda.so needs libggml-base.so"
  say "libggml-cuda.so needs: $(readelf -d "$lib" | sed -n 's/.*(NEEDED).*\[\(.*\)\]/\1/p' | paste -sd ' ' -)"
  say "its ggml/gguf references bind to (count, object): $(paste -sd ';' "$work/bound" 2>/dev/null | tr -s ' ')"
fi

# 3b. With VLM_GPU_DIAG=1: teardown variants, each in a process of its own.
if [ "${VLM_GPU_DIAG:-0}" = 1 ] && [ -f "$lib" ]; then
  diag_run() {
    local name=$1; shift
    echo "=== variant $name: $*"
    env "$@" VLM_GPU_DIAG=1 VLM_BACKEND_PATH="$cuda_dir" VLM_DIAG_MAPS="$work/maps-$name" \
      timeout 90 "$bin/gpu.test" -test.run '^TestGPUTeardownDiag$' -test.v >"$work/diag-$name.log" 2>&1
    local rc=$?
    echo "exit status $rc; last steps: $(grep '^diag:' "$work/diag-$name.log" | tail -2 | paste -sd '|' -)"
    grep -E '^(SIGSEGV|SIGABRT|PC=|signal arrived|fatal error)|^--- (PASS|FAIL|SKIP)' "$work/diag-$name.log"
    local pc addr
    pc=$(sed -n 's/^PC=\(0x[0-9a-f]*\).*/\1/p' "$work/diag-$name.log" | head -1)
    addr=$(sed -n 's/^PC=.* addr=\(0x[0-9a-f]*\).*/\1/p' "$work/diag-$name.log" | head -1)
    [ -n "$pc" ] && [ -f "$work/maps-$name" ] && python3 "$root/scripts/resolve-pc.py" "$work/maps-$name" "$pc" $addr
    [ $rc -ne 0 ] && grep -v '^    \|^\s*$' "$work/diag-$name.log" | grep -iE 'error|abort|assert|warn' | head -5
    return 0
  }
  {
    # The teardown fix (backend.c) on, then off: off crashed in llama_free.
    diag_run fixed VLM_BACKEND_DEFER=1
    diag_run fixed-text VLM_BACKEND_DEFER=1 VLM_DIAG_PROJ=none
    diag_run fixed-nographs VLM_BACKEND_DEFER=1 GGML_CUDA_DISABLE_GRAPHS=1
    diag_run unfixed VLM_BACKEND_DEFER=0
    if command -v cuda-gdb >/dev/null 2>&1 && grep -q '^SIGSEGV' "$work/diag-fixed.log"; then
      echo "=== cuda-gdb backtrace of the fixed variant"
      VLM_GPU_DIAG=1 VLM_BACKEND_PATH="$cuda_dir" timeout 100 cuda-gdb -q -batch \
        -ex 'set pagination off' -ex 'handle SIGURG SIGPIPE SIGPROF SIGCHLD nostop noprint pass' \
        -ex run -ex bt -ex 'x/8i $pc-16' -ex 'info registers rip rax rdi rsi' \
        --args "$bin/gpu.test" -test.run '^TestGPUTeardownDiag$' -test.v 2>&1 |
        grep -vE '^\[(New|Thread|Detaching|Inferior)|^warning: |^Using host libthread' | tail -60
    fi
  } >"$out/diag.txt" 2>&1
  grep -E '^=== variant|^exit status' "$out/diag.txt" | paste - - | sed 's/^=== variant //' | tee -a "$summary" >&2
fi

# 4. Tests, with the module loaded through VLM_BACKEND_PATH.
run_tests() {
  local name=$1; shift
  echo "=== $name: $*"
  timeout 300 "$@"
  local rc=$?
  echo "=== $name: exit status $rc"
  return $rc
}
{
  ( cd "$root" && VLM_BACKEND_PATH="$cuda_dir" run_tests gpu.test "$bin/gpu.test" -test.v -test.count=1 \
      -test.run '^(TestGPUDevices|TestCPUAndGPUAgree|TestGPUCycles|TestSkipMessage)$' ) || echo "FAILED gpu.test"
  if [ -x "$bin/vlm.test" ]; then
    # Root package: Init loads the module from VLM_BACKEND_PATH ...
    ( cd "$root" && VLM_BACKEND_PATH="$cuda_dir" run_tests vlm.test "$bin/vlm.test" -test.v -test.count=1 \
        -test.run 'Backend|GPU|Exports|Devices|Init' ) || echo "FAILED vlm.test"
    # ... and LoadBackends loads it explicitly in a process that has none.
    ( cd "$root" && VLM_BACKEND_PATH= VLM_TEST_BACKEND_MODULE="$lib" run_tests vlm.test-LoadBackends "$bin/vlm.test" -test.v \
        -test.count=1 -test.run '^TestLoadBackendModule$' ) || echo "FAILED vlm.test-LoadBackends"
  fi
  if [ -x "$bin/vlm-info-cuda" ]; then
    # -tags cuda: runs with the CUDA device, exits 1 naming the fix without it.
    VLM_BACKEND_PATH="$cuda_dir" run_tests vlm-info-cuda "$bin/vlm-info-cuda" || echo "FAILED vlm-info-cuda"
    VLM_BACKEND_PATH= run_tests vlm-info-cuda-without-gpu "$bin/vlm-info-cuda"
    [ $? -eq 1 ] || echo "FAILED vlm-info-cuda-without-gpu (want exit status 1)"
  fi
} >"$out/tests.log" 2>&1
grep -E '^(--- |=== .*exit status|FAILED|ok|PASS|FAIL)' "$out/tests.log" | grep -v '^=== RUN' >&2
grep -E 'first-step logits|top-5|greedy tokens|cycles in|device [0-9]+:|no CUDA device' "$out/tests.log" | sed 's/^ *//' | tee -a "$summary" >&2
grep -q '^FAILED' "$out/tests.log" && fail "tests (tests.log)"

# 5. Benchmarks: CPU in a process without the GPU backend, then GPU.
{
  echo "=== CPU (no GPU backend loaded)"
  VLM_BACKEND_PATH= timeout 300 "$bin/gpu.test" -test.run '^$' -test.bench 'SmolVLM/cpu' \
    -test.benchtime "${VLM_BENCH_CPU_TIMES:-3}x" || echo "FAILED cpu benchmarks"
  echo "=== GPU"
  VLM_BACKEND_PATH="$cuda_dir" timeout 300 "$bin/gpu.test" -test.run '^$' -test.bench 'SmolVLM/gpu' \
    -test.benchtime "${VLM_BENCH_GPU_TIMES:-30}x" || echo "FAILED gpu benchmarks"
} >"$out/bench.txt" 2>&1
grep -q '^FAILED' "$out/bench.txt" && fail "benchmarks (bench.txt)"

# 6. The table.
awk -v gpu="${gpu_name:-GPU}" -v cores="$(nproc)" '
  /^BenchmarkSmolVLM\// {
    split($1, p, "/"); mode = p[2]; test = p[3]; sub(/-[0-9]+$/, "", test)
    for (i = 2; i < NF; i++) if ($(i+1) == "tok/s" || $(i+1) == "ms/image") v[mode, test] = $i
  }
  function cell(m, t) { return ((m, t) in v) ? sprintf("%.1f", v[m, t]) : "-" }
  function ratio(t, inv) {
    if (!(("cpu", t) in v) || !(("gpu", t) in v) || v["cpu", t] == 0 || v["gpu", t] == 0) return "-"
    return sprintf("%.1fx", inv ? v["cpu", t] / v["gpu", t] : v["gpu", t] / v["cpu", t])
  }
  END {
    print "SmolVLM-256M shapes, Q8_0 text and projector weights, one 512x512 image tile"
    print "| | prefill tok/s (512) | decode tok/s (128) | decode+logits tok/s (128) | image encode ms |"
    print "|---|---|---|---|---|"
    printf "| CPU, %d cores | %s | %s | %s | %s |\n", cores, cell("cpu", "prefill512"), cell("cpu", "decode128"), cell("cpu", "decode128+logits"), cell("cpu", "encode")
    printf "| %s | %s | %s | %s | %s |\n", gpu, cell("gpu", "prefill512"), cell("gpu", "decode128"), cell("gpu", "decode128+logits"), cell("gpu", "encode")
    printf "| GPU speed-up | %s | %s | %s | %s |\n", ratio("prefill512", 0), ratio("decode128", 0), ratio("decode128+logits", 0), ratio("encode", 1)
  }' "$out/bench.txt" | tee -a "$summary"

rm -rf "$cache" "$work"
if [ $status -eq 0 ]; then say "all passed"; else say "some steps failed (see above)"; fi
exit $status
