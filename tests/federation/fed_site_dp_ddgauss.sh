#!/usr/bin/env bash
# (c) Distributed site-level DP (DDGauss under secure aggregation) with
# four sites; site-4 kills itself before sending its masked vector in
# round 1 (FEDFUSE_TEST_STOP_AT=mask), so only three of the four planned
# noise shares arrive. Both rounds publish with mechanism ddgauss and a
# finite epsilon, and round 1 (3 of 4 shares) costs more epsilon than
# round 2 (all 3 planned shares arrived): dropouts are accounted with the
# noise that actually arrived.
. "$(dirname "$0")/lib.sh"
setup

coord_start coord --sites site-1,site-2,site-3,site-4 --rounds 2 \
  --min-sites 3 --wait-sites 30 --deadline 30 --seed 9 --epochs 1 \
  --secagg on --secagg-stage-deadline 4 --site-dp distributed \
  --site-dp-clip 0.5 --site-dp-noise 1.0 --site-dp-bits 20
site_start site-1 site-1; s1=$SITE_PID
site_start site-2 site-2; s2=$SITE_PID
site_start site-3 site-3; s3=$SITE_PID
FEDFUSE_TEST_STOP_AT=mask site_start site-4 site-4; s4=$SITE_PID
wait_exit "$s4" 40
[ "$RC" = 137 ] || fail "site-4 did not kill itself at mask (got $RC)"
expect_exit "$COORD_PID" 60 coordinator
for p in "$s1" "$s2" "$s3"; do expect_exit "$p" 15 "site (pid $p)"; done
grep -q "site=site-4 dropped from round 1 at secagg stage masked input" \
  "$work/coord.err" || fail "site-4 was not dropped at the masked input"

# Two versions, each with a finite site-level epsilon from ddgauss.
V=$(ctl versions feddigits)
[ "$(jq length <<<"$V")" = 2 ] || fail "expected 2 versions: $V"
jq -c '.[] | {version, privacy, secagg: .train_config.secagg.sites}' \
  <<<"$V"
jq -e 'all(.[]; .privacy.site_mechanism == "ddgauss" and
               (.privacy.site_epsilon | type) == "number")' <<<"$V" \
  >/dev/null || fail "a version lacks its finite ddgauss epsilon"

# The model's ledger rows: 3 of 4 shares, then 3 of 3.
L=$(ctl privacy feddigits)
M=$(jq -c '[.entries[] | select(.site == null)]' <<<"$L")
jq -c '.[] | {round, status, mechanism, epsilon, p: (.params |
       {n_planned, arrived, clients, sigma, l2, round_epsilon})}' <<<"$M"
jq -e '.[0].params.n_planned == 4 and .[0].params.arrived == 3 and
       .[0].params.clients == 3 and .[1].params.n_planned == 3 and
       .[1].params.arrived == 3 and
       all(.[]; .mechanism == "ddgauss" and .status == "spent" and
           (.epsilon | type) == "number")' <<<"$M" >/dev/null ||
  fail "the model's ledger rows do not record the arrived noise"
r1=$(jq '.[0].params.round_epsilon' <<<"$M")
r2=$(jq '.[1].params.round_epsilon' <<<"$M")
awk -v a="$r1" -v b="$r2" 'BEGIN {
  printf "round epsilon with 3 of 4 shares %.6f, with 3 of 3 %.6f "\
         "(ratio %.4f, required > 1)\n", a, b, a / b
  exit !(a > b) }' || fail "a dropout did not raise the round's epsilon"
jq -e '.[1].epsilon > .[0].epsilon' <<<"$M" >/dev/null ||
  fail "the cumulative epsilon did not grow"
pass
