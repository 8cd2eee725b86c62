#!/usr/bin/env bash
# (a) A coordinator and two real site processes run two rounds over
# loopback: both versions are published with the parent link, their
# artifacts match their digests, the audit trail is complete, and the
# model beats chance (10 classes) on the test set.
. "$(dirname "$0")/lib.sh"
setup

coord_start coord --sites site-1,site-2 --rounds 2 --min-sites 2 \
  --wait-sites 30 --deadline 40 --seed 7
site_start site-1 site-1; s1=$SITE_PID
site_start site-2 site-2; s2=$SITE_PID
expect_exit "$COORD_PID" 60 coordinator
expect_exit "$s1" 15 site-1
expect_exit "$s2" 15 site-2

# Two versions, linked, from both sites.
v=$(ctl versions feddigits)
[ "$(jq length <<<"$v")" = 2 ] || fail "expected 2 versions: $v"
jq -e '.[0].version == 1 and .[0].parent == null and .[0].round == 1' \
  <<<"$v" >/dev/null || fail "version 1 is not round 1 without parent"
jq -e '.[1].version == 2 and .[1].parent == 1 and .[1].round == 2' \
  <<<"$v" >/dev/null || fail "version 2 is not round 2 with parent 1"
for i in 0 1; do
  jq -e ".[$i].contributions | map(.site) | sort == [\"site-1\",\"site-2\"]" \
    <<<"$v" >/dev/null || fail "version $((i + 1)) lacks a contribution"
  jq -e ".[$i].train_config.protocol == \"fedavg\"" <<<"$v" >/dev/null ||
    fail "version $((i + 1)) does not record the fedavg protocol"
done

# The stored artifact hashes to the published digest.
"$FEDFUSE_BIN/fedfusectl" --db "$DB" export feddigits 2 "$work/v2.bin" \
  >/dev/null || fail "cannot export version 2"
digest=$(b2sum -l 256 "$work/v2.bin" | cut -d' ' -f1)
[ "$digest" = "$(jq -r '.[1].digest' <<<"$v")" ] ||
  fail "version 2 artifact does not match its digest"

# Better than chance after two rounds.
acc=$(jq '.[1].metrics.accuracy' <<<"$v")
echo "accuracy after 2 rounds: $acc (chance 0.10, required > 0.20)"
awk -v a="$acc" 'BEGIN { exit !(a > 0.20) }' ||
  fail "accuracy $acc is not above 0.20"
[ "$(grep -c '^METRIC round ' "$work/coord.out")" = 2 ] ||
  fail "expected 2 METRIC round lines"
grep '^METRIC round ' "$work/coord.out"

# The audit trail holds every state change.
for want in coordinator.started:1 site.registered:2 round.started:2 \
            update.accepted:4 version.published:2 round.finished:2 \
            coordinator.stopped:1; do
  n=$(audit_count "${want%%:*}")
  [ "$n" = "${want##*:}" ] ||
    fail "audit ${want%%:*}: $n rows, expected ${want##*:}"
done
grep -q 'state training -> aggregating (round 2)' "$work/coord.err" ||
  fail "no logged transition into aggregation of round 2"
pass
