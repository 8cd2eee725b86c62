#!/usr/bin/env bash
# A second coordinator on a port that is already served must fail with a
# reason, not share the port (gRPC turns SO_REUSEPORT on by default, and two
# coordinators would then split the sites between two federations). Also:
# a learning rate of 0 is refused before anything starts; and a second
# coordinator of the same model on the same database is refused, since both
# would run the same rounds and race to publish.
. "$(dirname "$0")/lib.sh"
setup

coord_start first --sites site-1 --rounds 1 --min-sites 1 --wait-sites 20 \
  --deadline 20
rc=0
timeout 20 "$FEDFUSE_BIN/fedfuse-coordinator" --listen "127.0.0.1:$PORT" \
  --db "$DB" --test "$work/fd/test/manifest.jsonl" --sites site-1 \
  --rounds 1 --secagg off "${COORD_SEC[@]}" >"$work/second.out" \
  2>"$work/second.err" ||
  rc=$?
[ "$rc" = 1 ] || fail "second coordinator on port $PORT exited $rc, expected 1"
grep -q "cannot listen on 127.0.0.1:$PORT" "$work/second.err" ||
  fail "second coordinator did not say why it stopped"
grep "cannot listen" "$work/second.err"
[ "$(ss -Hltn "sport = :$PORT" | wc -l)" = 1 ] ||
  fail "more than one listener on port $PORT"

rc=0
timeout 20 "$FEDFUSE_BIN/fedfuse-coordinator" --listen 127.0.0.1:0 \
  --db "$DB" --test "$work/fd/test/manifest.jsonl" \
  --sites site-1,site-2,site-3 --rounds 1 "${COORD_SEC[@]}" \
  >"$work/third.out" 2>"$work/third.err" || rc=$?
[ "$rc" = 1 ] || fail "second coordinator of the model exited $rc, expected 1"
grep -q "already served by another coordinator" "$work/third.err" ||
  fail "second coordinator of the model did not say why it stopped"
grep "already served" "$work/third.err"

rc=0
timeout 20 "$FEDFUSE_BIN/fedfuse-coordinator" --listen 127.0.0.1:0 \
  --db "$DB" --test "$work/fd/test/manifest.jsonl" \
  --sites site-1,site-2,site-3 --lr 0 --secagg off "${COORD_SEC[@]}" \
  >"$work/lr.out" 2>"$work/lr.err" || rc=$?
[ "$rc" = 2 ] || [ "$rc" = 1 ] || fail "--lr 0 exited $rc, expected a refusal"
grep -q "lr: must be above 0" "$work/lr.err" || fail "--lr 0 gave no reason"
grep "lr" "$work/lr.err"
pass
