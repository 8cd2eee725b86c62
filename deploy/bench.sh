#!/usr/bin/env bash
# Runs one of fedfuse's benchmarks, building it first when needed (Release,
# warnings as errors, only the benchmark's own target).
#
# Usage: deploy/bench.sh [--build DIR] NAME [ARGS...]
#        deploy/bench.sh --help
# The benchmark prints a table and ends with one line "RESULT NAME k=v ...".
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build=${FF_BUILD_DIR:-$root/build}

# name -> "target|what it measures"
declare -A benches=(
  [secagg]="bench_secagg|secure aggregation: masking rate vs raw ChaCha20;
           a simulated round, 1,000 sites x 1,000,000 parameters"
)

usage() {
  sed -n '2,7p' "$0" | sed 's/^# \{0,1\}//'
  echo
  echo "Benchmarks:"
  for name in "${!benches[@]}"; do
    printf '  %-8s %s\n' "$name" "${benches[$name]#*|}"
  done
  echo
  echo "Options:"
  echo "  --build DIR  build folder (default \$FF_BUILD_DIR or build/)"
  echo "  ARGS         passed to the benchmark"
  echo "               (secagg: --sites N --params M --dropout F)"
}

while [ $# -gt 0 ]; do
  case "$1" in
    -h|--help) usage; exit 0 ;;
    --build) build=$2; shift 2 ;;
    *) break ;;
  esac
done
[ $# -ge 1 ] || { usage >&2; exit 2; }
name=$1; shift
if [ -z "${benches[$name]:-}" ]; then
  echo "bench: unknown benchmark '$name' (see --help)" >&2
  exit 2
fi
target=${benches[$name]%%|*}

# configure once, then build only this benchmark's target
mkdir -p "$build"
if [ ! -f "$build/CMakeCache.txt" ]; then
  cmake -S "$root" -B "$build" -DFF_WERROR=ON -DCMAKE_BUILD_TYPE=Release \
    >"$build/configure.log" 2>&1 || { cat "$build/configure.log" >&2; exit 1; }
fi
if ! cmake --build "$build" --target "$target" -j2 \
      >"$build/bench-build.log" 2>&1; then
  grep -E 'error|Error' "$build/bench-build.log" | head -20 >&2
  echo "bench: building $target failed; log in $build/bench-build.log" >&2
  exit 1
fi
exec "$build/bin/$target" "$@"
