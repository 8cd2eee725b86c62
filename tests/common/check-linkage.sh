#!/usr/bin/env bash
# A site never touches the database: fedfuse-site must not link libpq, and
# only the coordinator and fedfusectl may. Usage: check-linkage.sh BIN_DIR
set -uo pipefail
bin=${1:?usage: check-linkage.sh BIN_DIR}
bad=0
for prog in fedfuse-site fedfuse-train fedfuse-feddigits; do
  if [ ! -x "$bin/$prog" ]; then
    echo "linkage: $bin/$prog is missing"; bad=1; continue
  fi
  if ldd "$bin/$prog" | grep -q 'libpq\.so'; then
    echo "linkage: $prog links libpq; only the coordinator and fedfusectl may"; bad=1
  fi
done
for prog in fedfuse-coordinator fedfusectl; do
  if ! ldd "$bin/$prog" 2>/dev/null | grep -q 'libpq\.so'; then
    echo "linkage: $prog does not link libpq (missing or built wrong)"; bad=1
  fi
done
[ "$bad" -eq 0 ] && echo "linkage: ok"
exit "$bad"
