#!/usr/bin/env bash
# (b) Central site-level DP with a model budget that admits two rounds but
# not three: versions 1 and 2 are published with their site-level epsilon,
# round 3 is refused before it opens (WARN line, "refused" model ledger
# row), the federation ends with status 0, and the ledger's epsilon is
# what the accountant gives for the recorded noise. A restarted
# coordinator rebuilds its accountant from the ledger and refuses again.
# Argument: plain (default; two sites, sums in the clear) or
# secagg-adaptive (three sites, secure aggregation, adaptive clipping:
# the clip moves between rounds and continues after the restart).
. "$(dirname "$0")/lib.sh"
variant=${1:-plain}
setup

# The budget lies between the epsilon of two and of three rounds of the
# Gaussian mechanism (q = 1) at multiplier z: the grid slack lowers the
# accounted multiplier by about 1%, far less than the gap.
z=2.0
delta=1e-5
sites=site-1,site-2
extra=(--secagg off)
if [ "$variant" = secagg-adaptive ]; then
  # The count's noise takes its share: z_u = (z^-2 - (2 * 3/20)^-2)^-1/2.
  z=0.25
  sites=site-1,site-2,site-3
  extra=(--secagg on --site-dp-adaptive on)
fi
nsites=$(tr ',' '\n' <<<"$sites" | wc -l)
plan() {
  "$FEDFUSE_BIN/fedfusectl" --json privacy plan --sampling-rate 1 \
    --noise-multiplier "$1" --steps "$2" --delta "$delta" | jq '.epsilon'
}
e2=$(plan "$z" 2)
e3=$(plan "$z" 3)
budget=$(awk -v a="$e2" -v b="$e3" 'BEGIN { printf "%.6f", (a + b) / 2 }')
echo "epsilon after 2 rounds $e2, after 3 rounds $e3: budget $budget"

# sites_run LOGSUFFIX: starts the sites, waits for them after the
# coordinator.
sites_run() {
  local i spids=()
  for i in $(seq "$nsites"); do
    site_start "site-$i" "site-$i" "site-$i$1"; spids+=("$SITE_PID")
  done
  expect_exit "$COORD_PID" 60 coordinator
  for i in "${spids[@]}"; do expect_exit "$i" 15 "site (pid $i)"; done
}
coord_start coord --sites "$sites" --rounds 3 --min-sites "$nsites" \
  --wait-sites 30 --deadline 40 --seed 5 --epochs 1 --site-dp central \
  --site-dp-clip 0.5 --site-dp-noise "$z" --model-epsilon "$budget" \
  --model-delta "$delta" "${extra[@]}"
sites_run ""

# Versions 1 and 2 only, each with its site-level epsilon.
V=$(ctl versions feddigits)
[ "$(jq length <<<"$V")" = 2 ] || fail "expected 2 versions: $V"
jq -c '.[] | {version, privacy}' <<<"$V"
jq -e 'all(.[]; .privacy.site_mechanism == "central-gaussian" and
               (.privacy.site_epsilon | type) == "number" and
               .privacy.record_epsilon == null)' <<<"$V" >/dev/null ||
  fail "versions lack their central site-level epsilon"
jq -e '.[1].privacy.site_epsilon > .[0].privacy.site_epsilon' <<<"$V" \
  >/dev/null || fail "the epsilon of version 2 does not exceed version 1's"

# Round 3 refused: one WARN line, one model ledger row, nothing opened.
grep -E "round 3 refused: the model's epsilon would reach [0-9.]+, above \
its budget" "$work/coord.err" || fail "no WARN line refusing round 3"
L=$(ctl privacy feddigits)
jq -c '.entries[] | select(.site == null)' <<<"$L"
jq -e '[.entries[] | select(.site == null and .round == 3 and
        .status == "refused" and (.reason | test("budget")))] | length == 1' \
  <<<"$L" >/dev/null || fail "no refused model ledger row for round 3"
jq -e '[.entries[] | select(.site == null and .status == "spent" and
        .mechanism == "central-gaussian")] | length == 2' <<<"$L" \
  >/dev/null || fail "expected 2 spent model ledger rows"
[ "$(audit_count round.started)" = 2 ] || fail "round 3 was started"
grep -q "federation finished: the model's privacy budget is spent" \
  "$work/coord.err" || fail "the coordinator did not say why it ended"

# Adaptive clipping: the clip moved after each round, from the noised
# count of unclipped updates, and the next round used it.
if [ "$variant" = secagg-adaptive ]; then
  jq -e '[.entries[] | select(.site == null and .status == "spent")] |
         (.[0].params.clip_next != .[0].params.clip) and
         (.[1].params.clip == .[0].params.clip_next) and
         all(.[]; (.params.unclipped_count_noised | type) == "number")' \
    <<<"$L" >/dev/null || fail "the adaptive clip did not move"
  grep -E "adaptive clipping: noised unclipped count" "$work/coord.err" ||
    fail "no adaptive clipping log line"
  clip_last=$(jq '[.entries[] | select(.site == null and
                   .status == "spent")][1].params.clip_next' <<<"$L")
fi

# The ledger's epsilon is the accountant's for the recorded multiplier
# (with a fixed clip every round has the same multiplier; an adaptive one
# moves the grid step, so there the epsilon is only bounded).
got=$(jq '[.entries[] | select(.site == null and .round == 2)][0].epsilon' \
      <<<"$L")
if [ "$variant" = plain ]; then
  sigma=$(jq '[.entries[] | select(.site == null and .round == 2)][0]
              .params.sigma' <<<"$L")
  want=$(plan "$sigma" 2)
else
  sigma=adaptive
  want=$e2
fi
awk -v a="$got" -v b="$want" -v e2="$e2" -v e3="$e3" -v v="$variant" '
BEGIN {
  d = a - b; if (d < 0) d = -d
  tol = v == "plain" ? 1e-9 : 0.05
  printf "round 2 epsilon %.9f, expected %.9f (sigma_eff '"$sigma"'), "\
         "difference %.3g (tolerance %g relative)\n", a, b, d, tol
  exit !(d <= tol * b && a >= e2 && a < e3) }' ||
  fail "the model's epsilon disagrees with the accountant"

# A restart rebuilds the accountant from the ledger: round 3 again refused.
coord_start coord2 --sites "$sites" --rounds 4 --min-sites "$nsites" \
  --wait-sites 30 --deadline 10 --seed 5 --epochs 1 --site-dp central \
  --site-dp-clip 0.5 --site-dp-noise "$z" "${extra[@]}"
sites_run -again
grep -q "model accountant rebuilt from 2 ledger rows" "$work/coord2.err" ||
  fail "the restarted coordinator did not rebuild its accountant"
grep -qE "round 3 refused: the model's epsilon would reach" \
  "$work/coord2.err" || fail "the restarted coordinator did not refuse"
[ "$(jq length <<<"$(ctl versions feddigits)")" = 2 ] ||
  fail "the restarted coordinator published a version"
if [ "$variant" = secagg-adaptive ]; then
  clip_g=$(awk -v c="$clip_last" 'BEGIN { printf "%g", c }')
  grep "site-level DP" "$work/coord2.err" | grep -q "clip $clip_g\$" ||
    fail "the restarted coordinator did not continue from clip $clip_last"
fi
pass
