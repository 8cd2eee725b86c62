#!/usr/bin/env bash
# (c) Restart: a coordinator runs round 1 and exits; a second one started
# with --rounds 2 continues from version 1 (version 2 has parent 1). A third
# is killed (SIGKILL) in the middle of round 3; the fourth marks round 3
# aborted ("coordinator restarted") and publishes round 4 as version 3 with
# parent 2.
. "$(dirname "$0")/lib.sh"
setup
sites=(--sites site-1,site-2 --wait-sites 30 --deadline 40)

# run 1 and run 2: one round each.
for run in 1 2; do
  coord_start "run$run" "${sites[@]}" --rounds "$run" --min-sites 2
  site_start site-1 site-1 "site-1.run$run"; a=$SITE_PID
  site_start site-2 site-2 "site-2.run$run"; b=$SITE_PID
  expect_exit "$COORD_PID" 60 "coordinator run $run"
  expect_exit "$a" 15 "site-1 run $run"
  expect_exit "$b" 15 "site-2 run $run"
done
grep -q 'continuing from version 1 (round 1); next round 2' \
  "$work/run2.err" || fail "run 2 did not continue from version 1"
v=$(ctl versions feddigits)
[ "$(jq length <<<"$v")" = 2 ] || fail "expected 2 versions after run 2"
jq -e '.[1].version == 2 and .[1].parent == 1 and .[1].round == 2' \
  <<<"$v" >/dev/null || fail "version 2 does not continue version 1"

# run 3: round 3 opens with one silent site; the coordinator is killed.
coord_start run3 --sites site-1,site-2 --rounds 3 --min-sites 1 \
  --wait-sites 4 --deadline 60
site_start site-1 site-1 site-1.run3; silent=$SITE_PID
wait_log "$work/run3.err" 'site=site-1 registered' 15
kill -STOP "$silent"
wait_log "$work/run3.err" 'state waiting -> training \(round 3\)' 20
kill -KILL "$COORD_PID"
kill -KILL "$silent"
wait_exit "$COORD_PID" 5

# run 4: round 3 is aborted, round 4 continues from version 2.
coord_start run4 "${sites[@]}" --rounds 4 --min-sites 2
site_start site-1 site-1 site-1.run4; a=$SITE_PID
site_start site-2 site-2 site-2.run4; b=$SITE_PID
expect_exit "$COORD_PID" 60 "coordinator run 4"
expect_exit "$a" 15 "site-1 run 4"
expect_exit "$b" 15 "site-2 run 4"
grep -q 'round 3 was left unfinished by an earlier coordinator' \
  "$work/run4.err" || fail "run 4 did not mark round 3 aborted"
ctl audit --action round.aborted |
  jq -e 'any(.details.round == 3 and
             .details.reason == "coordinator restarted")' >/dev/null ||
  fail "no round.aborted audit row for round 3"
v=$(ctl versions feddigits)
[ "$(jq length <<<"$v")" = 3 ] || fail "expected 3 versions after run 4"
jq -e '.[2].version == 3 and .[2].parent == 2 and .[2].round == 4' \
  <<<"$v" >/dev/null || fail "version 3 is not round 4 with parent 2"
[ "$(audit_count coordinator.started)" = 4 ] ||
  fail "expected 4 coordinator.started rows"
pass
