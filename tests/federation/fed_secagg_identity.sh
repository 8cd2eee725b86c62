#!/usr/bin/env bash
# Site identity keys, pinned to the site's certificate: a site's first
# registration over its certificate pins its Ed25519 key (stored with the
# site and the certificate serial in the registry, file mode 0600); a
# later registration with the same certificate and another key is refused
# (log line and audit row site.refused), also by a restarted coordinator,
# while the original key is still accepted.
. "$(dirname "$0")/lib.sh"
setup

coord_start coord --sites site-1,site-2,site-3 --rounds 1 --min-sites 3 \
  --wait-sites 60 --deadline 30 --secagg on
site_start site-1 site-1 first; p=$SITE_PID
wait_log "$work/coord.err" 'site=site-1 registered' 15
kill -KILL "$p"
[ "$(stat -c %a "$work/fd/site-1/site.identity")" = 600 ] ||
  fail "identity file is not mode 0600"
key=$(ctl status | jq -r '.sites[] | select(.name == "site-1") |
                          .details.identity_key')
[ ${#key} = 64 ] || fail "no pinned identity key stored: '$key'"
echo "pinned key of site-1: $key"
serial=$(ctl status | jq -r '.sites[] | select(.name == "site-1") |
                             .details.identity_serial')
[ ${#serial} = 32 ] || fail "the key is not pinned to a certificate: '$serial'"
grep -q "site=site-1: identity key pinned to certificate serial $serial" \
  "$work/coord.err" || fail "no log line of the pin to serial $serial"
site_sec site-1

# Another key for the same id: refused, and the site exits 1.
"$FEDFUSE_BIN/fedfuse-site" --id site-1 --coordinator "127.0.0.1:$PORT" \
  --manifest "$work/fd/site-1/manifest.jsonl" --identity "$work/other.key" \
  --retry-seconds 10 "${SITE_SEC[@]}" >"$work/impostor.out" \
  2>"$work/impostor.err" &
imp=$!
pids+=("$imp")
wait_exit "$imp" 20
[ "$RC" = 1 ] || fail "the impostor site did not exit 1 (got $RC)"
grep -q 'refused registration of site=site-1: identity key differs' \
  "$work/coord.err" || fail "no refusal logged"
[ "$(audit_count site.refused site-1)" = 1 ] || fail "no site.refused audit"

# A restarted coordinator keeps the pin.
kill -TERM "$COORD_PID"
expect_exit "$COORD_PID" 20 "first coordinator"
coord_start coord2 --sites site-1,site-2,site-3 --rounds 1 --min-sites 3 \
  --wait-sites 60 --deadline 30 --secagg on
grep -q '1 pinned site identity keys restored' "$work/coord2.err" ||
  fail "the pinned key was not restored"
"$FEDFUSE_BIN/fedfuse-site" --id site-1 --coordinator "127.0.0.1:$PORT" \
  --manifest "$work/fd/site-1/manifest.jsonl" --identity "$work/other.key" \
  --retry-seconds 10 "${SITE_SEC[@]}" >"$work/impostor2.out" \
  2>"$work/impostor2.err" &
imp=$!
pids+=("$imp")
wait_exit "$imp" 20
[ "$RC" = 1 ] || fail "the restarted coordinator accepted another key"
site_start site-1 site-1 second
wait_log "$work/coord2.err" 'site=site-1 registered' 15
[ "$(audit_count site.refused site-1)" = 2 ] || fail "expected 2 refusals"
pass
