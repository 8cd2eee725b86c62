#!/usr/bin/env bash
# Checks the layering rule of docs/architecture.md: which top-level folder's
# C files may include which other folder's headers, and which system headers
# (libpq, gRPC, OpenSSL, protobuf-c and its generated code) may appear
# where. Prints every violation and exits 1 if there is one.
set -uo pipefail
root=${1:-$(cd "$(dirname "$0")/../.." && pwd)}
cd "$root" || exit 2

# folder -> project folders it may include from (besides itself)
declare -A allowed=(
  [common]=""
  [model]="common"
  [dataset]="common model"
  [privacy]=""
  [trust]="common"
  [proto]="common"
  [registry]="common"
  [coordinator]="common model dataset registry privacy proto trust"
  [client]="common model dataset privacy proto trust"
  [admin]="common registry privacy trust"
)
folders="${!allowed[*]}"
bad=0

for dir in $folders; do
  [ -d "$dir" ] || continue
  while IFS= read -r -d '' f; do
    while IFS= read -r inc; do
      # project includes look like "../model/ff_model.h" or "model/x.h"
      target=$(printf '%s' "$inc" | sed -E 's#^(\.\./)+##' | cut -d/ -f1)
      case " $folders " in *" $target "*) ;; *) continue ;; esac
      [ "$target" = "$dir" ] && continue
      case " ${allowed[$dir]} " in
        *" $target "*) ;;
        *) echo "layering: $f includes $inc ($dir may not depend on $target)"; bad=1 ;;
      esac
    done < <(grep -hoE '^#include "[^"]+"' "$f" | sed -E 's/#include "([^"]+)"/\1/')

    # system libraries confined to their layer
    if grep -qE '^#include <libpq-fe\.h>' "$f" && [ "$dir" != registry ]; then
      echo "layering: $f includes libpq (only registry/ may)"; bad=1
    fi
    if grep -qE '^#include <openssl/' "$f" && [ "$dir" != trust ]; then
      echo "layering: $f includes OpenSSL (only trust/ may)"; bad=1
    fi
    if grep -qE '^#include <grpc/' "$f"; then
      case "$f" in coordinator/*|client/*|proto/ff_grpc_buf.[ch]) ;; *)
        echo "layering: $f includes gRPC" \
             "(only coordinator/, client/ and proto/ff_grpc_buf.[ch] may)"
        bad=1 ;;
      esac
    fi
    if grep -qE '^#include [<"][^>"]*\.pb-c\.h[>"]' "$f"; then
      case "$f" in coordinator/wire.c|client/wire.c|proto/*) ;; *)
        echo "layering: $f includes generated protobuf code (only */wire.c may)"; bad=1 ;;
      esac
    fi
    # protobuf-c's runtime, directly or through the shared wire helpers
    if grep -qE '^#include (<protobuf-c/|"[^"]*ff_wire_codec\.h")' "$f"; then
      case "$f" in coordinator/wire.c|client/wire.c|proto/*) ;; *)
        echo "layering: $f includes protobuf-c (only */wire.c and proto/ may)"; bad=1 ;;
      esac
    fi
    if [ "$dir" = privacy ] && grep -qE '^#include <' "$f" &&
       grep -E '^#include <' "$f" | grep -vE '<(sodium\.h|std[a-z]*\.h|string\.h|math\.h|limits\.h|assert\.h|errno\.h|stdio\.h|inttypes\.h)>'; then
      echo "layering: $f includes something beyond libsodium and the C library"; bad=1
    fi
  done < <(find "$dir" -name '*.[ch]' -print0)
done

if [ "$bad" -eq 0 ]; then
  echo "layering: ok ($(find $folders -name '*.[ch]' 2>/dev/null | wc -l) files checked)"
fi
exit "$bad"
