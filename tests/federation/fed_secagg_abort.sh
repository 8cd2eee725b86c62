#!/usr/bin/env bash
# Secure aggregation below its threshold: two of three sites die after
# advertising their keys (FEDFUSE_TEST_STOP_AT=share), so the sharing stage
# closes with one site where t = 2 are needed. Round 1 must abort cleanly
# (log line, audit row round.aborted with the library's reason, nothing
# published); the coordinator goes on, and once the two sites are back,
# round 2 publishes from all three.
. "$(dirname "$0")/lib.sh"
setup

coord_start coord --sites site-1,site-2,site-3 --rounds 2 --min-sites 3 \
  --wait-sites 30 --deadline 20 --seed 5 --epochs 1 --secagg on \
  --secagg-stage-deadline 4
site_start site-1 site-1; p1=$SITE_PID
FEDFUSE_TEST_STOP_AT=share site_start site-2 site-2 site-2-dies; p2=$SITE_PID
FEDFUSE_TEST_STOP_AT=share site_start site-3 site-3 site-3-dies; p3=$SITE_PID
wait_exit "$p2" 40
[ "$RC" = 137 ] || fail "site-2 did not kill itself (got $RC)"
wait_exit "$p3" 40
[ "$RC" = 137 ] || fail "site-3 did not kill itself (got $RC)"
wait_log "$work/coord.err" 'round 1 aborted: secagg key sharing: aborted' 30
grep 'round 1 aborted' "$work/coord.err"
[ "$(audit_count round.aborted)" = 1 ] || fail "no round.aborted audit row"
ctl audit --action round.aborted | jq -e '.[0].details.reason |
  test("secagg key sharing: aborted")' >/dev/null ||
  fail "the audit row does not give the reason"
for s in site-2 site-3; do
  [ "$(ctl audit --action site.dropped --site $s |
       jq '[.[] | select(.details.stage == "share")] | length')" = 1 ] ||
    fail "$s was not audited as dropped at the share stage"
done

# The coordinator is still there; the sites come back for round 2.
kill -0 "$COORD_PID" 2>/dev/null || fail "the coordinator did not survive"
site_start site-2 site-2; p2=$SITE_PID
site_start site-3 site-3; p3=$SITE_PID
expect_exit "$COORD_PID" 60 coordinator
expect_exit "$p1" 15 site-1
v=$(ctl versions feddigits)
jq -e 'length == 1 and .[0].round == 2 and
       .[0].train_config.secagg.sites.masked == 3' <<<"$v" >/dev/null ||
  fail "expected one version, from round 2, with 3 inputs: $v"
echo "round 2: $(jq -c '.[0].train_config.secagg.sites' <<<"$v")"
pass
