#!/usr/bin/env bash
# (d) A straggler: site-3 registers and then stops responding (SIGSTOP).
# When the 6 s deadline passes it is dropped (logged, audited
# "site.dropped") and round 1 publishes with the two others; round 2 goes
# on without it.
. "$(dirname "$0")/lib.sh"
setup

coord_start coord --sites site-1,site-2,site-3 --rounds 2 --min-sites 2 \
  --wait-sites 30 --deadline 6
site_start site-3 site-3; straggler=$SITE_PID
wait_log "$work/coord.err" 'site=site-3 registered' 15
kill -STOP "$straggler"
site_start site-1 site-1; a=$SITE_PID
site_start site-2 site-2; b=$SITE_PID
expect_exit "$COORD_PID" 60 coordinator
expect_exit "$a" 15 site-1
expect_exit "$b" 15 site-2

grep -qE 'WARN .*site=site-3 dropped from round 1: no accepted update' \
  "$work/coord.err" || fail "no line for dropping site-3"
grep -q 'state training -> aggregating (round 1): deadline passed' \
  "$work/coord.err" || fail "round 1 did not close on its deadline"
ctl audit --action site.dropped --site site-3 |
  jq -e 'length == 1 and .[0].details.round == 1' >/dev/null ||
  fail "expected one site.dropped audit row for site-3 in round 1"
v=$(ctl versions feddigits)
[ "$(jq length <<<"$v")" = 2 ] || fail "expected 2 versions: $v"
for i in 0 1; do
  jq -e ".[$i].contributions | map(.site) | sort == [\"site-1\",\"site-2\"]" \
    <<<"$v" >/dev/null || fail "version $((i + 1)) contributions"
done
jq -e '.[1].parent == 1' <<<"$v" >/dev/null || fail "version 2 parent"
pass
