#!/usr/bin/env bash
# Bounded upload buffers: four real sites with --secagg on and
# --secagg-max-uploads 1, so at most one masked vector is buffered at a
# time and the others are answered "busy" (retry_after_ms > 0) and sent
# again. The round must publish with all four contributions, the
# coordinator must log at least one busy answer and audit no
# update.rejected, and the model must equal the one the same federation
# publishes with the default cap (4).
. "$(dirname "$0")/lib.sh"
setup

# Each upload holds its buffer 500 ms after the header (a site test hook),
# so the four sites, which mask at about the same time, overlap for sure.
export FEDFUSE_TEST_UPLOAD_PAUSE_MS=500

# run NAME CAP: one secure round with four sites; sets V (versions JSON),
# REJ (update.rejected rows) and ACC (update.accepted rows).
run() {
  local name=$1 cap=$2 p s
  local -a sp=()
  psql -d "$FEDFUSE_TEST_PG" -q -c "DROP DATABASE IF EXISTS ${dbname}_$name" \
    -c "CREATE DATABASE ${dbname}_$name" >/dev/null ||
    fail "cannot create database ${dbname}_$name"
  local saved=$DB
  DB="$FEDFUSE_TEST_PG dbname=${dbname}_$name"
  coord_start "coord-$name" --sites site-1,site-2,site-3,site-4 --rounds 1 \
    --min-sites 4 --wait-sites 30 --deadline 40 --seed 11 --epochs 1 \
    --secagg on --secagg-stage-deadline 20 --secagg-max-uploads "$cap"
  for s in 1 2 3 4; do
    site_start "site-$s" "site-$s" "site-$s-$name"
    sp+=("$SITE_PID")
  done
  expect_exit "$COORD_PID" 60 "coordinator (cap $cap)"
  for p in "${sp[@]}"; do
    expect_exit "$p" 15 "a site (cap $cap)"
  done
  V=$(ctl versions feddigits)
  REJ=$(audit_count update.rejected)
  ACC=$(audit_count update.accepted)
  "$FEDFUSE_BIN/fedfusectl" --db "$DB" export feddigits 1 "$work/$name.bin" \
    >/dev/null || fail "cannot export the version of cap $cap"
  psql -d "$FEDFUSE_TEST_PG" -q -c "DROP DATABASE IF EXISTS ${dbname}_$name" \
    >/dev/null 2>&1 || true
  DB=$saved
}

run one 1
v1=$V
rej1=$REJ
acc1=$ACC
run four 4
v4=$V
if grep -q 'busy answer to site=' "$work/coord-four.err"; then
  fail "cap 4: four sites were answered busy"
fi

# Cap 1: all four vectors summed, busy answers given, none refused.
jq -e '.[0].train_config.secagg | .sites.selected == 4 and
       .sites.answered == 4 and .dropped.unmask == 0' <<<"$v1" >/dev/null ||
  fail "secagg record (cap 1): $(jq -c '.[0].train_config.secagg' <<<"$v1")"
[ "$acc1" = 4 ] || fail "cap 1: $acc1 update.accepted rows, expected 4"
[ "$rej1" = 0 ] || fail "cap 1: $rej1 update.rejected rows, expected 0"
busy=$(grep -c 'busy answer to site=' "$work/coord-one.err" || true)
echo "cap 1: busy answers logged for $busy site(s) (one line per site)"
[ "$busy" -ge 1 ] || fail "cap 1: the coordinator logged no busy answer"
if grep -q 'rejected update' "$work/coord-one.err"; then
  fail "cap 1: the coordinator rejected an update"
fi
for s in 1 2 3 4; do
  n=$(grep -c "busy answer to site=site-$s " "$work/coord-one.err" || true)
  [ "$n" -le 1 ] || fail "cap 1: $n busy lines for site-$s in one round"
done

# The cap changes when vectors arrive, not what is summed: same model.
"$FEDFUSE_BIN/test_fed_compare" "$work/one.bin" "$work/four.bin" 1e-9 ||
  fail "the models of cap 1 and cap 4 differ"
a1=$(jq '.[0].metrics.accuracy' <<<"$v1")
a4=$(jq '.[0].metrics.accuracy' <<<"$v4")
echo "accuracy cap 1 $a1, cap 4 $a4 (must be equal)"
[ "$a1" = "$a4" ] || fail "accuracy differs: $a1 vs $a4"
pass
