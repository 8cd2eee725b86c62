#!/usr/bin/env bash
# Configures and builds fedfuse with CMake. Usage: deploy/build.sh [BUILD_DIR]
# (default: build/ in the repository). Warnings are errors.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build=${1:-$root/build}
jobs=$(nproc 2>/dev/null || echo 2)
mkdir -p "$build"
start=$(date +%s)

if ! cmake -S "$root" -B "$build" -DFF_WERROR=ON -DCMAKE_BUILD_TYPE=Release \
      -DFF_DATA_DIR="${FEDFUSE_DATA:-$root/../shared/data}" >"$build/configure.log" 2>&1; then
  cat "$build/configure.log" >&2
  exit 1
fi
if ! cmake --build "$build" -j"$jobs" >"$build/build.log" 2>&1; then
  grep -E 'error|Error' "$build/build.log" | head -40 >&2
  echo "build: failed; full log in $build/build.log" >&2
  exit 1
fi
echo "build: done in $(( $(date +%s) - start )) s ($build)"
