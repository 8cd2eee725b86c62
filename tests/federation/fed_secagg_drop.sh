#!/usr/bin/env bash
# (b) Secure aggregation with a site that dies at one stage (argument:
# advert, share, mask, midmask or unmask; FEDFUSE_TEST_STOP_AT makes
# site-3 SIGKILL itself there). Round 1 must publish exactly the sum of the
# sites whose input is in it: compared parameter by parameter with a plain
# run of those sites. Round 2 has only two sites left, too few for secure
# aggregation: it must abort cleanly, and the coordinator must finish.
. "$(dirname "$0")/lib.sh"
stage=${1:?usage: fed_secagg_drop.sh STAGE}
setup

# newdb NAME: a fresh database for one run; sets DB.
newdb() {
  psql -d "$FEDFUSE_TEST_PG" -q -c "DROP DATABASE IF EXISTS ${dbname}_$1" \
    -c "CREATE DATABASE ${dbname}_$1" >/dev/null ||
    fail "cannot create database ${dbname}_$1"
  DB="$FEDFUSE_TEST_PG dbname=${dbname}_$1"
}
dropdb_all() {
  local d
  for d in sa plain; do
    psql -d "$FEDFUSE_TEST_PG" -q -c "DROP DATABASE IF EXISTS ${dbname}_$d" \
      >/dev/null 2>&1 || true
  done
}
trap 'dropdb_all; cleanup' EXIT

# The secure run: site-3 dies at $stage.
newdb sa
coord_start coord-sa --sites site-1,site-2,site-3 --rounds 2 --min-sites 2 \
  --wait-sites 30 --deadline 12 --seed 11 --epochs 1 --secagg on \
  --secagg-stage-deadline 4
site_start site-1 site-1; p1=$SITE_PID
site_start site-2 site-2; p2=$SITE_PID
FEDFUSE_TEST_STOP_AT=$stage site_start site-3 site-3; p3=$SITE_PID
wait_exit "$p3" 40
[ "$RC" = 137 ] || fail "site-3 did not kill itself at $stage (got $RC)"
expect_exit "$COORD_PID" 50 coordinator
expect_exit "$p1" 15 site-1
expect_exit "$p2" 15 site-2
V=$(ctl versions feddigits)
[ "$(jq length <<<"$V")" = 1 ] || fail "expected 1 version: $V"
jq -c '.[0].train_config.secagg' <<<"$V"
"$FEDFUSE_BIN/fedfusectl" --db "$DB" export feddigits 1 "$work/sa.bin" \
  >/dev/null || fail "cannot export the secure version"

# What was logged and audited.
case $stage in
  advert) want=advert; inputs=2 ;;
  share) want=share; inputs=2 ;;
  mask|midmask) want="masked input"; inputs=2 ;;
  unmask) want=unmask; inputs=3 ;;
esac
grep -q "site=site-3 dropped from round 1 at secagg stage $want" \
  "$work/coord-sa.err" || fail "no log line dropping site-3 at $want"
[ "$(ctl audit --action site.dropped --site site-3 |
     jq "[.[] | select(.details.stage == \"$want\")] | length")" -ge 1 ] ||
  fail "no audit row site.dropped for site-3 at $want"
jq -e ".[0].train_config.secagg.sites.masked == $inputs" <<<"$V" \
  >/dev/null || fail "expected $inputs inputs in the sum"
grep -q 'round 2 aborted: secure aggregation needs at least 3 sites' \
  "$work/coord-sa.err" || fail "round 2 did not abort cleanly"
[ "$(audit_count round.aborted)" = 1 ] || fail "expected one round.aborted"
[ "$stage" != midmask ] ||
  grep -q 'broke off\|rejected update from site=site-3' "$work/coord-sa.err" ||
  fail "the half-sent vector was not refused"

# The plain reference: the sites whose input is in the sum.
newdb plain
sites=site-1,site-2
[ "$inputs" = 3 ] && sites=site-1,site-2,site-3
coord_start coord-plain --sites "$sites" --rounds 1 --min-sites "$inputs" \
  --wait-sites 30 --deadline 30 --seed 11 --epochs 1 --secagg off
site_start site-1 site-1 site-1-plain; q1=$SITE_PID
site_start site-2 site-2 site-2-plain; q2=$SITE_PID
[ "$inputs" = 3 ] && { site_start site-3 site-3 site-3-plain; q3=$SITE_PID; }
expect_exit "$COORD_PID" 40 "plain coordinator"
"$FEDFUSE_BIN/fedfusectl" --db "$DB" export feddigits 1 "$work/plain.bin" \
  >/dev/null || fail "cannot export the plain version"
"$FEDFUSE_BIN/test_fed_compare" "$work/sa.bin" "$work/plain.bin" 1e-5 ||
  fail "the secure aggregate is not the sum of the surviving inputs"
pass
