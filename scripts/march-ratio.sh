#!/usr/bin/env bash
# march-ratio.sh — speed of vlm's default build (what a module that only does
# `go get` gets: x86-64-v3 on amd64) relative to a -march=native build
# (cmd/vlm-env), in one run: builds cmd/vlm-bench both ways, runs them in
# turns and prints the best prefill and decode speed of each and their ratio.
#
#   scripts/march-ratio.sh [vlm-bench flags]     e.g. -threads 2
#
# Environment: PRESET (smolvlm-256m), TYPES (q8_0, one type), ROUNDS (3).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
preset=${PRESET:-smolvlm-256m}
typ=${TYPES:-q8_0}
rounds=${ROUNDS:-3}
mkdir -p bin
echo "march-ratio: building the default binary" >&2
env -u CGO_CFLAGS -u CGO_CXXFLAGS -u CGO_CPPFLAGS -u GOFLAGS go build -o bin/vlm-bench-default ./cmd/vlm-bench
echo "march-ratio: building the -march=native binary" >&2
(
  unset VLM_PORTABLE VLM_MARCH GOFLAGS
  eval "$(CGO_ENABLED=0 go run ./cmd/vlm-env)"
  go build -o bin/vlm-bench-native ./cmd/vlm-bench
)
out=$(mktemp)
trap 'rm -f "$out"' EXIT
for ((r = 1; r <= rounds; r++)); do
  for b in default native; do
    echo "march-ratio: round $r, $b" >&2
    bin/vlm-bench-$b -preset "$preset" -types "$typ" "$@" |
      awk -v b="$b" -v t="$typ" '$1 == t { print b, $4, $5 }' >>"$out"
  done
done
awk -v preset="$preset" -v typ="$typ" -v rounds="$rounds" '
  { if ($2 > p[$1]) p[$1] = $2; if ($3 > d[$1]) d[$1] = $3 }
  END {
    printf "preset %s, %s, best of %d rounds\n", preset, typ, rounds
    printf "%-8s %14s %13s\n", "build", "prefill tok/s", "decode tok/s"
    printf "%-8s %14.1f %13.1f\n", "default", p["default"], d["default"]
    printf "%-8s %14.1f %13.1f\n", "native", p["native"], d["native"]
    printf "default / native: prefill %.3f×, decode %.3f×\n", p["default"] / p["native"], d["default"] / d["native"]
  }' "$out"
