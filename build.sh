#!/usr/bin/env bash
# build.sh — set up, build, test and run vlm.
#
#   ./build.sh [setup]        check tools, download modules, build everything
#   ./build.sh test [args]    run the whole test suite; args go to `go test` (packages named
#                             there, e.g. ./template, replace the whole suite). It runs real
#                             JavaScript OpenAI clients too (openai/jsclients) where Node.js 20+ and
#                             npm are installed (else they skip, saying so; VLM_JSCLIENTS=on makes that
#                             a failure); npm ci reaches the registry once per lockfile
#                             (cached under the user cache dir); VLM_JSCLIENTS=off skips them
#   ./build.sh chat [flags]   build and run examples/chat (flags go to it)
#   ./build.sh server [flags] build and run cmd/vlm-server, the OpenAI-compatible server
#   ./build.sh vet            go vet ./... with the same flags
#   ./build.sh env [flags]    print the export lines for another CPU target (cmd/vlm-env)
#   ./build.sh go ARGS...     run any go command with vlm's cgo flags set
#   ./build.sh cuda           build the CUDA backend (third_party/build/cuda/libggml-cuda.so),
#                             which vlm loads at run time; needs CMake and the CUDA toolkit
#
# Options (environment):
#   VLM_MARCH=...    compile ggml's CPU backend for this -march value (e.g. native)
#                    instead of vlm's default, the one a module that requires vlm
#                    gets: x86-64-v3 (AVX2) with AVX-512 kernels chosen at run time
#   VLM_PORTABLE=1   vlm's default target (kept for old scripts: it is the default)
#   VLM_CUDA_ARCH=.. CUDA architecture(s) for ./build.sh cuda, e.g. 90 (default: the local GPU's)
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
user_dir=$PWD # where the user ran build.sh: chat's relative paths mean this
cd "$root"

die() { echo "build.sh: $*" >&2; exit 1; }

check_tools() {
  command -v go >/dev/null 2>&1 ||
    die "Go is not installed: install Go 1.26 or newer (https://go.dev/dl/, or 'apt-get install golang' where new enough)"
  local gov
  gov=$(go env GOVERSION | sed 's/^go//')
  case "$gov" in
    1.2[6-9]*|1.[3-9][0-9]*|[2-9].*) ;;
    *) die "Go $gov is too old: vlm needs Go 1.26 or newer" ;;
  esac
  local cc cxx
  cc=$(go env CC); cxx=$(go env CXX)
  command -v "${cc%% *}" >/dev/null 2>&1 ||
    die "no C compiler ('$cc'): install one, e.g. 'apt-get install gcc g++' (Debian) or Xcode's command line tools (macOS)"
  command -v "${cxx%% *}" >/dev/null 2>&1 ||
    die "no C++ compiler ('$cxx'): install one, e.g. 'apt-get install g++' (Debian)"
  [ "$(go env CGO_ENABLED)" = 1 ] || die "cgo is disabled (CGO_ENABLED=0): vlm compiles llama.cpp through cgo; unset CGO_ENABLED"
}

# compute_env runs cmd/vlm-env, which links the pinned module at
# third_party/ollama@VERSION (git-ignored), where a checkout's cgo directives
# look for it, and, with VLM_MARCH, exports the CPU target in CGO_CFLAGS and
# CGO_CXXFLAGS plus the build tag vlm_march in GOFLAGS (it drops vlm's own
# target). -trimpath keeps this checkout's path out of Go's build cache keys,
# so that another clone reuses the compiled llama.cpp; VLM_CHECKOUT tells
# the program where the checkout is (backend.go looks for ./build.sh cuda's
# output there).
compute_env() {
  local lines
  lines=$(CGO_ENABLED=0 go run ./cmd/vlm-env ${VLM_MARCH:+-march="$VLM_MARCH"} ${VLM_MARCH:--portable}) ||
    die "could not compute the cgo flags (see above)"
  eval "$lines"
  case " ${GOFLAGS:-} " in *" -trimpath "*) ;; *) export GOFLAGS="${GOFLAGS:+$GOFLAGS }-trimpath" ;; esac
  export VLM_CHECKOUT="$root"
}

# go_args rewrites a -tags flag in "$@" so that it keeps GOFLAGS' vlm_march
# (a -tags on the command line replaces the one in GOFLAGS) and the tags in
# $extra_tags (test and vet: vlmtest, which compiles the hooks only tests
# use); the result is in the array args.
go_args() {
  args=()
  local tag="${extra_tags:-}" seen=""
  case " ${GOFLAGS:-} " in *vlm_march*) tag="${tag:+$tag,}vlm_march" ;; esac
  while [ $# -gt 0 ]; do
    case "$1" in
      -tags=*|--tags=*) args+=("$1${tag:+,$tag}"); seen=1 ;;
      -tags|--tags) args+=("$1"); shift; args+=("${1:-}${tag:+,$tag}"); seen=1 ;;
      *) args+=("$1") ;;
    esac
    shift
  done
  if [ -z "$seen" ] && [ -n "${extra_tags:-}" ]; then
    args=("-tags=$tag" ${args[@]+"${args[@]}"})
  fi
}

# test_tools installs what some tests use beyond Go and gcc, where it can do
# so quietly (as root with apt-get: CI, a fresh Debian machine); elsewhere
# those tests skip and say what to install.
test_tools() {
  command -v qemu-x86_64 >/dev/null 2>&1 && return 0
  [ "$(uname -m)" = x86_64 ] && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1 || return 0
  echo "build.sh: installing qemu-user (Debian) for the test that simulates a CPU without AVX2" >&2
  apt-get install -y -q qemu-user >/dev/null 2>&1 ||
    { apt-get update -q >/dev/null 2>&1 && apt-get install -y -q qemu-user >/dev/null 2>&1; } ||
    echo "build.sh: could not install qemu-user; TestCPUCheck will skip" >&2
}

# note_compile says once, before a build that must compile llama.cpp, what
# is happening and for how long (Go's build cache makes later builds quick).
note_compile() {
  local stale
  stale=$(go list -f '{{.Stale}}' ./internal/cc/llama 2>/dev/null || echo true)
  if [ "$stale" = true ]; then
    echo "build.sh: compiling llama.cpp, ggml and mtmd through cgo (${CGO_CFLAGS:-the default flags})." >&2
    echo "build.sh: the first build takes about 3-5 minutes on 2 cores (longer on a busy machine); later builds come from Go's build cache." >&2
  fi
}

cmd=${1:-setup}
[ $# -gt 0 ] && shift

case "$cmd" in
  setup|build)
    check_tools
    echo "build.sh: downloading modules" >&2
    go mod download
    compute_env
    note_compile
    go build ./...
    echo "build.sh: done. './build.sh test' runs the tests; './build.sh env' prints the flags for your shell." >&2
    ;;
  test)
    check_tools
    test_tools
    compute_env
    note_compile
    # Packages named in the arguments replace ./...; flags go to go test.
    pkgs=()
    flags=()
    for a in "$@"; do
      case "$a" in
        ./*|.|github.com/*) pkgs+=("$a") ;;
        *) flags+=("$a") ;;
      esac
    done
    if [ ${#pkgs[@]} -eq 0 ]; then
      pkgs=(./...)
      # The chat-template corpus first, from inside its package so that go
      # test shows the case counts it prints.
      (cd template && go test -timeout=3m -run '^(TestCorpus|TestDifferential)$' | grep '^template:')
    fi
    # Every test binary gets an explicit limit: on a cold 2-core machine
    # the slowest packages (the root: the consumer test; mtmd: its evidence
    # runs a child process per malformed file) run under a minute alone and
    # about two beside another compile, far under half of 10 minutes. A
    # -timeout in the arguments wins.
    case " ${flags[*]-} " in *" -timeout"*|*" --timeout"*|*" -test.timeout"*) ;; *) flags=(-timeout=10m ${flags[@]+"${flags[@]}"}) ;; esac
    extra_tags=vlmtest go_args ${flags[@]+"${flags[@]}"}
    go test ${args[@]+"${args[@]}"} "${pkgs[@]}"
    ;;
  vet)
    check_tools
    compute_env
    extra_tags=vlmtest go_args "$@"
    go vet ${args[@]+"${args[@]}"} ./...
    ;;
  server)
    check_tools
    compute_env
    note_compile
    mkdir -p bin
    go build -o bin/vlm-server ./cmd/vlm-server
    cd "$user_dir"
    exec "$root/bin/vlm-server" "$@"
    ;;
  chat)
    check_tools
    compute_env
    note_compile
    # Build, then run the binary itself from the user's directory: relative
    # -model/-image paths mean what the user typed, and its exit status (0,
    # 1, or 130 after Ctrl-C) is the one build.sh returns.
    mkdir -p bin
    go build -o bin/chat ./examples/chat
    cd "$user_dir"
    exec "$root/bin/chat" "$@"
    ;;
  env)
    check_tools
    CGO_ENABLED=0 go run ./cmd/vlm-env "$@"
    ;;
  go)
    check_tools
    compute_env
    go_args "$@"
    go ${args[@]+"${args[@]}"}
    ;;
  cuda)
    # ggml's CUDA backend from the pinned module, as a module that vlm
    # loads at run time (backend.go); Go itself needs no CUDA toolkit.
    command -v go >/dev/null 2>&1 || die "Go is not installed: it finds the pinned module's ggml sources (on a machine without Go, run third_party/cuda/build.sh GGML_SRC OUTPUT_DIR)"
    ollama=$(go list -m -f '{{.Dir}}' github.com/ollama/ollama 2>/dev/null || true)
    if [ -z "$ollama" ]; then
      go mod download github.com/ollama/ollama
      ollama=$(go list -m -f '{{.Dir}}' github.com/ollama/ollama)
    fi
    [ -n "$ollama" ] || die "could not find the github.com/ollama/ollama module (try 'go mod download')"
    exec third_party/cuda/build.sh "$ollama/ml/backend/ggml/ggml" third_party/build/cuda
    ;;
  -h|--help|help)
    sed -n '2,/^set -euo/p' "$0" | sed '$d' | sed 's/^# \{0,1\}//'
    ;;
  *)
    die "unknown command '$cmd' (try ./build.sh help)"
    ;;
esac
