#!/usr/bin/env bash
# Runs one of fedfuse's benchmarks, building it first when needed (Release,
# warnings as errors, the benchmark's own targets only).
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
  [dp]="bench_dp|DP-SGD vs plain training of the model on one real
           feddigits site (1,500 records, built first), about a minute"
)
# targets a benchmark needs besides its own
declare -A extra_targets=([dp]="fedfuse-feddigits")

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
  echo "               (secagg: --sites N --params M --dropout F;"
  echo "                dp: --epochs N --batch B --clip C --noise Z --seed S;"
  echo "                FF_BENCH_DATA: datasets folder, default ../shared/data)"
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
# shellcheck disable=SC2086  # the extra targets are a word list
if ! cmake --build "$build" --target "$target" ${extra_targets[$name]:-} \
      -j2 >"$build/bench-build.log" 2>&1; then
  grep -E 'error|Error' "$build/bench-build.log" | head -20 >&2
  echo "bench: building $target failed; log in $build/bench-build.log" >&2
  exit 1
fi
[ "$name" = dp ] || exec "$build/bin/$target" "$@"

# dp: one feddigits site (all four modalities) and a test set, built into
# a temporary folder that goes away with the run
data=${FF_BENCH_DATA:-$root/../shared/data}
work=$(mktemp -d "${TMPDIR:-/tmp}/ff-bench-dp.XXXXXX")
trap 'rm -rf "$work"' EXIT
echo "bench: building a feddigits site from $data" >&2
if ! "$build/bin/fedfuse-feddigits" --data "$data" --out "$work" --seed 1 \
      --records 1500 --test-records 500 >"$work/feddigits.log" 2>&1; then
  tail -20 "$work/feddigits.log" >&2
  exit 1
fi
"$build/bin/$target" --manifest "$work/site-1/manifest.jsonl" \
  --test "$work/test/manifest.jsonl" "$@"
