#!/usr/bin/env bash
# march-ratio.sh — speed of vlm's default build (what a module that only does
# `go get` gets: x86-64-v3 on amd64, with AVX-512 copies of the hottest kernels
# chosen at start) relative to a -march=native build (VLM_MARCH=native), in
# one run: builds cmd/vlm-bench both ways, runs them in turns, also the default
# binary with VLM_CPU_VARIANT=x86-64-v3 (its baseline kernels), and prints the
# best prefill, decode and image-encode speed of each and their ratios.
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
env -u VLM_MARCH -u VLM_PORTABLE ./build.sh go build -o bin/vlm-bench-default ./cmd/vlm-bench
echo "march-ratio: building the -march=native binary" >&2
VLM_MARCH=native ./build.sh go build -o bin/vlm-bench-native ./cmd/vlm-bench
out=$(mktemp)
trap 'rm -f "$out"' EXIT
for ((r = 1; r <= rounds; r++)); do
  for b in default baseline native; do
    echo "march-ratio: round $r, $b" >&2
    bin=bin/vlm-bench-$b
    env=()
    if [ "$b" = baseline ]; then bin=bin/vlm-bench-default; env=(VLM_CPU_VARIANT=x86-64-v3); fi
    env "${env[@]}" "$bin" -preset "$preset" -types "$typ" "$@" |
      awk -v b="$b" -v t="$typ" '$1 == t { print b, $4, $5, $6 }' >>"$out"
  done
done
kernels=$(./build.sh go run ./cmd/vlm-info 2>/dev/null | sed -n 's/^cpu kernels: //p')
awk -v preset="$preset" -v typ="$typ" -v rounds="$rounds" -v kernels="$kernels" '
  { if ($2 > p[$1]) p[$1] = $2; if ($3 > d[$1]) d[$1] = $3; if (!($1 in e) || $4 < e[$1]) e[$1] = $4 }
  END {
    printf "preset %s, %s, best of %d rounds; the default build chose the %s kernels\n", preset, typ, rounds, kernels
    printf "%-9s %14s %13s %10s\n", "build", "prefill tok/s", "decode tok/s", "encode ms"
    split("default baseline native", names, " ")
    for (i = 1; i <= 3; i++) { n = names[i]; printf "%-9s %14.1f %13.1f %10.1f\n", n, p[n], d[n], e[n] }
    printf "default / native:  prefill %.3f×, decode %.3f×, encode %.3f×\n", p["default"] / p["native"], d["default"] / d["native"], e["native"] / e["default"]
    printf "baseline / native: prefill %.3f×, decode %.3f×, encode %.3f× (VLM_CPU_VARIANT=x86-64-v3)\n", p["baseline"] / p["native"], d["baseline"] / d["native"], e["native"] / e["baseline"]
  }' "$out"
