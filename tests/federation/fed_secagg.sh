#!/usr/bin/env bash
# (a) Secure aggregation end to end: three real sites and a coordinator
# with --secagg on publish one version; the same federation (same seed,
# same data) with --secagg off publishes another. The two models must agree
# within the quantisation error, the version must record the protocol and
# its parameters, and each site's identity key must be pinned.
. "$(dirname "$0")/lib.sh"
setup

# run NAME MODE: one round with three sites; sets V (versions JSON).
run() {
  local name=$1 mode=$2 p1 p2 p3
  psql -d "$FEDFUSE_TEST_PG" -q -c "DROP DATABASE IF EXISTS ${dbname}_$name" \
    -c "CREATE DATABASE ${dbname}_$name" >/dev/null ||
    fail "cannot create database ${dbname}_$name"
  local saved=$DB
  DB="$FEDFUSE_TEST_PG dbname=${dbname}_$name"
  coord_start "coord-$name" --sites site-1,site-2,site-3 --rounds 1 \
    --min-sites 3 --wait-sites 30 --deadline 40 --seed 11 --epochs 1 \
    --secagg "$mode" --secagg-stage-deadline 15
  site_start site-1 site-1 "site-1-$name"; p1=$SITE_PID
  site_start site-2 site-2 "site-2-$name"; p2=$SITE_PID
  site_start site-3 site-3 "site-3-$name"; p3=$SITE_PID
  expect_exit "$COORD_PID" 50 "coordinator ($mode)"
  expect_exit "$p1" 15 "site-1 ($mode)"
  expect_exit "$p2" 15 "site-2 ($mode)"
  expect_exit "$p3" 15 "site-3 ($mode)"
  V=$(ctl versions feddigits)
  "$FEDFUSE_BIN/fedfusectl" --db "$DB" export feddigits 1 "$work/$name.bin" \
    >/dev/null || fail "cannot export the $mode version"
  psql -d "$FEDFUSE_TEST_PG" -q -c "DROP DATABASE IF EXISTS ${dbname}_$name" \
    >/dev/null 2>&1 || true
  DB=$saved
}

run sa on
vs=$V
run plain off
vp=$V

# The secure round records its protocol and parameters.
jq -e '.[0].train_config.protocol == "secagg+"' <<<"$vs" >/dev/null ||
  fail "the secure version does not record protocol secagg+: $vs"
jq -e '.[0].train_config.secagg | .k == 2 and .t == 2 and .b == 32 and
       .sites.selected == 3 and .sites.answered == 3 and
       .dropped.advert == 0 and .dropped.unmask == 0' <<<"$vs" >/dev/null ||
  fail "secagg record: $(jq -c '.[0].train_config.secagg' <<<"$vs")"
jq -e '.[0].train_config.protocol == "fedavg"' <<<"$vp" >/dev/null ||
  fail "the plain version does not record fedavg"
jq -c '.[0].train_config.secagg' <<<"$vs"
grep -q 'identity key pinned' "$work/coord-sa.err" ||
  fail "no identity key was pinned"
for s in 1 2 3; do
  [ "$(stat -c %a "$work/fd/site-$s/site.identity")" = 600 ] ||
    fail "site-$s identity file is not mode 0600"
done

# Same model within quantisation error: parameter-wise and in accuracy.
"$FEDFUSE_BIN/test_fed_compare" "$work/sa.bin" "$work/plain.bin" 1e-5 ||
  fail "secure and plain models differ beyond tolerance"
as=$(jq '.[0].metrics.accuracy' <<<"$vs")
ap=$(jq '.[0].metrics.accuracy' <<<"$vp")
echo "accuracy secagg $as, plain $ap"
awk -v a="$as" -v b="$ap" 'BEGIN { d = a - b; if (d < 0) d = -d;
  print "accuracy difference " d " (tolerance 0.005)"; exit !(d <= 0.005) }' ||
  fail "accuracy differs"
pass
