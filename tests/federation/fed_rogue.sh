#!/usr/bin/env bash
# (b) A rogue site (rogue_site.c, built on the site RPC library) sends a
# wrong-size update, a short one, a NaN, an oversized chunk, inflated
# example counts, an update from an unknown site id, one from a known but
# unselected site, a second update in a round and a replay of an earlier
# round. Each is refused with its reason in the coordinator log (one WARN
# line) and in the audit, while both rounds complete with the honest site.
# The rogue speaks for several ids over one channel, so this federation
# runs without TLS (--tls off, a logged WARN); fed_mtls.sh covers who may
# speak for whom.
TLS=off
. "$(dirname "$0")/lib.sh"
setup

coord_start coord --sites honest-a,rogue,late --rounds 2 --min-sites 2 \
  --wait-sites 2 --deadline 40
site_start honest-a site-1; honest=$SITE_PID
"$FEDFUSE_BIN/test_fed_rogue_site" --coordinator "127.0.0.1:$PORT" \
  --id rogue --late late >"$work/rogue.out" 2>"$work/rogue.err" &
rogue=$!
pids+=("$rogue")
wait_exit "$rogue" 60
cat "$work/rogue.out"
[ "$RC" = 0 ] || fail "the rogue's expectations failed (status $RC)"
expect_exit "$COORD_PID" 60 coordinator
expect_exit "$honest" 15 honest-a

# One WARN line per refusal, naming site, round and reason.
log=$work/coord.err
for want in \
    'site=mallory round=1: unknown site' \
    'site=rogue round=1: wrong parameter count' \
    'site=rogue round=1: byte length mismatch' \
    'site=rogue round=1: invalid values: NaN or Inf' \
    'site=rogue round=1: oversized chunk' \
    'site=rogue round=1: group .* claims 1000000 examples' \
    'site=late round=1: site not selected for round 1' \
    'site=rogue round=1: second update from the site in round 1' \
    'site=rogue round=1: wrong round: update for round 1, which is over'; do
  grep -qE "WARN .*rejected update from $want" "$log" ||
    fail "no rejection line for: $want"
done
grep -q "refused registration of site=mallory: unknown site id" "$log" ||
  fail "no refusal line for the unknown site's registration"
grep -q "unknown method /fedfuse.Federation/Nope" "$log" ||
  fail "no line for the unknown method"

# The same refusals in the audit.
a=$(ctl audit --action update.rejected)
echo "update.rejected audit rows: $(jq length <<<"$a")"
for want in 'unknown site' 'wrong parameter count' 'byte length mismatch' \
            'NaN or Inf' 'oversized chunk' 'claims' 'not selected' \
            'second update' 'wrong round'; do
  jq -e --arg w "$want" 'map(.details.reason) | any(contains($w))' \
    <<<"$a" >/dev/null || fail "no update.rejected audit row for '$want'"
done
[ "$(audit_count site.refused)" = 1 ] || fail "expected 1 site.refused row"

# Both rounds completed; the refused updates left no trace in them.
v=$(ctl versions feddigits)
[ "$(jq length <<<"$v")" = 2 ] || fail "expected 2 versions: $v"
jq -e '.[1].parent == 1' <<<"$v" >/dev/null || fail "version 2 parent"
jq -e '.[0].contributions | map(.site) | sort == ["honest-a","rogue"]' \
  <<<"$v" >/dev/null || fail "round 1 contributions are not honest-a + rogue"
jq -e '.[0].contributions[] | select(.site == "rogue") | .examples == 1' \
  <<<"$v" >/dev/null || fail "the rogue's valid update weighs 1 example"
pass
