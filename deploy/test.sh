#!/usr/bin/env bash
# Runs the whole fedfuse test suite on a fresh Debian 12 machine: installs
# what is missing, builds with warnings as errors, starts a throwaway
# PostgreSQL server (socket only) and runs every test with ctest.
# Usage: deploy/test.sh [ctest arguments, e.g. -R registry]
# Environment: FEDFUSE_DATA (datasets), FEDFUSE_BUILD (build folder).
set -euo pipefail
case ${1:-} in -h|--help) sed -n '2,6p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;; esac
root=$(cd "$(dirname "$0")/.." && pwd)
build=${FEDFUSE_BUILD:-$root/build}
export FEDFUSE_DATA=${FEDFUSE_DATA:-$root/../shared/data}

if [ ! -d "$FEDFUSE_DATA/mnist" ]; then
  echo "test: datasets not found at $FEDFUSE_DATA (set FEDFUSE_DATA)" >&2
  exit 1
fi

"$root/deploy/install-deps.sh"
"$root/deploy/build.sh" "$build"

pgdir=$(mktemp -d /tmp/fedfuse-test-pg.XXXXXX)
cleanup() { "$root/deploy/pg.sh" stop "$pgdir" >/dev/null 2>&1 || true; rm -rf "$pgdir"; }
trap cleanup EXIT
FEDFUSE_TEST_PG=$("$root/deploy/pg.sh" start "$pgdir")
export FEDFUSE_TEST_PG
echo "test: PostgreSQL at $FEDFUSE_TEST_PG"

cd "$build"
ctest --output-on-failure --timeout 300 -j2 "$@"
