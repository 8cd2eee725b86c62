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
  # ldd's output is read whole first: with pipefail, grep -q closing the
  # pipe early would make ldd die of SIGPIPE and the check fail at random.
  libs=$(ldd "$bin/$prog" 2>&1 || true)
  if grep -q 'libpq\.so' <<<"$libs"; then
    echo "linkage: $prog links libpq; only the coordinator and fedfusectl may"; bad=1
  fi
done
for prog in fedfuse-coordinator fedfusectl; do
  libs=$(ldd "$bin/$prog" 2>&1 || true)
  if ! grep -q 'libpq\.so' <<<"$libs"; then
    echo "linkage: $prog does not link libpq (missing or built wrong)"; bad=1
  fi
done
[ "$bad" -eq 0 ] && echo "linkage: ok"
exit "$bad"
