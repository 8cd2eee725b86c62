#!/usr/bin/env bash
# (a) Record-level DP with a site budget that allows exactly one round:
# three sites train with DP-SGD at a fixed noise multiplier; site-3's
# epsilon budget lies between its epsilon after one round and after two.
# In round 2 site-3 refuses (its log says why), is neither dropped nor
# awaited, and the round publishes with the other two. The ledger
# (`fedfusectl privacy`) holds the refusal and every spent row, and the
# versions carry the largest record-level epsilon of their contributors.
# Argument: plain (default) or secagg, where site-3 leaves the secure
# round before advertising keys, like a site that never advertised.
. "$(dirname "$0")/lib.sh"
variant=${1:-plain}
setup
secagg=off
[ "$variant" = secagg ] && secagg=on

# Each site: q = batch / records, steps = round(1 / q) per round (1
# epoch). The site accounts a multiplier about 2% below z (grid slack),
# far less than the gap between one and two rounds.
z=1.5
batch=32
delta=1e-5
records=$(wc -l <"$work/fd/site-3/manifest.jsonl")
q=$(awk -v b="$batch" -v n="$records" 'BEGIN { printf "%.17g", b / n }')
steps=$(awk -v q="$q" 'BEGIN { printf "%d", int(1 / q + 0.5) }')
plan() {
  "$FEDFUSE_BIN/fedfusectl" --json privacy plan --sampling-rate "$q" \
    --noise-multiplier "$z" --steps "$1" --delta "$delta" | jq '.epsilon'
}
e1=$(plan "$steps")
e2=$(plan $((2 * steps)))
budget=$(awk -v a="$e1" -v b="$e2" 'BEGIN { printf "%.6f", (a + b) / 2 }')
echo "site-3: $records records, q $q, $steps steps a round; epsilon after" \
     "1 round $e1, after 2 rounds $e2: budget $budget"

dp="--dp on --noise-multiplier $z --batch $batch --delta $delta"
coord_start coord --sites site-1,site-2,site-3 --rounds 2 --min-sites 2 \
  --wait-sites 30 --deadline 40 --seed 3 --epochs 1 --secagg "$secagg" \
  --secagg-stage-deadline 10
# shellcheck disable=SC2086
site_start site-1 site-1 site-1 $dp; s1=$SITE_PID
# shellcheck disable=SC2086
site_start site-2 site-2 site-2 $dp; s2=$SITE_PID
# shellcheck disable=SC2086
site_start site-3 site-3 site-3 $dp --epsilon-budget "$budget"; s3=$SITE_PID
expect_exit "$COORD_PID" 60 coordinator
for p in "$s1" "$s2" "$s3"; do expect_exit "$p" 15 "site (pid $p)"; done

# Site-3 said why; the coordinator logged the refusal and went on.
grep -iE "round 2.*refus|refus.*round 2" "$work/site-3.err" | head -n 2
grep -iE "refus" "$work/site-3.err" | grep -q "$budget\|budget" ||
  fail "site-3's log does not say that its budget refuses round 2"
grep -E "site=site-3 refused round 2: .+ \(record-level epsilon would be" \
  "$work/coord.err" || fail "the coordinator did not log site-3's refusal"
[ "$(audit_count site.dropped site-3)" = 0 ] || fail "site-3 was dropped"
if [ "$secagg" = on ]; then
  jq -e '.[1].train_config.secagg.sites | .refused == 1 and
         .advertised == 2 and .masked == 2' <<<"$(ctl versions feddigits)" \
    >/dev/null || fail "round 2's secure record does not show the refusal"
  grep -q "secagg stage advert -> sharing (round 2)" "$work/coord.err" ||
    fail "round 2's key advertisement did not close"
  ! grep -q "site=site-3 dropped" "$work/coord.err" ||
    fail "site-3 was logged as dropped"
else
  grep -q "every selected site sent an update" "$work/coord.err" ||
    fail "a round waited for its deadline"
fi

# Versions: round 2 from site-1 and site-2, each with its epsilon.
V=$(ctl versions feddigits)
[ "$(jq length <<<"$V")" = 2 ] || fail "expected 2 versions: $V"
jq -c '.[] | {version, sites: [.contributions[].site], privacy}' <<<"$V"
jq -e '.[1].contributions | map(.site) | sort == ["site-1","site-2"]' \
  <<<"$V" >/dev/null || fail "round 2 is not from site-1 and site-2"
jq -e '.[0].contributions | length == 3' <<<"$V" >/dev/null ||
  fail "round 1 is not from all three sites"
"$FEDFUSE_BIN/fedfusectl" --db "$DB" versions feddigits | tee "$work/v.txt"
grep -qi "epsilon\|eps" "$work/v.txt" ||
  fail "fedfusectl versions does not show epsilon"

# The ledger: spent rows with the sites' numbers, site-3's refusal.
L=$(ctl privacy feddigits)
jq -c '.entries[] | select(.site != null) |
       {round, site, status, epsilon, budget, reason}' <<<"$L"
jq -e '[.entries[] | select(.site == "site-3" and .round == 2 and
        .status == "refused" and (.reason | length > 0))] | length == 1' \
  <<<"$L" >/dev/null || fail "no refused ledger row for site-3 in round 2"
jq -e '[.entries[] | select(.site != null and .status == "spent" and
        .mechanism == "dp-sgd")] | length == 5' <<<"$L" >/dev/null ||
  fail "expected 5 spent dp-sgd rows (3 in round 1, 2 in round 2)"
e3=$(jq '[.entries[] | select(.site == "site-3" and .round == 1)][0]
         .epsilon' <<<"$L")
w3=$(jq '[.entries[] | select(.site == "site-3" and .round == 2)][0]
         .epsilon' <<<"$L")
awk -v a="$e3" -v w="$w3" -v b="$budget" -v e1="$e1" -v e2="$e2" 'BEGIN {
  printf "site-3: spent %.6f in round 1 (planned %.6f, %.2f%% above), "\
         "would reach %.6f in round 2 (planned %.6f); budget %.6f\n",
         a, e1, 100 * (a - e1) / e1, w, e2, b
  exit !(a <= b && w > b && a >= e1 && (a - e1) / e1 < 0.05) }' ||
  fail "site-3's ledger rows do not bracket its budget"

# The version's record-level epsilon is the largest of its contributors.
max2=$(jq '[.entries[] | select(.site != null and .round == 2 and
           .status == "spent") | .epsilon] | max' <<<"$L")
jq -e --argjson m "$max2" '.[1].privacy.record_epsilon == $m' <<<"$V" \
  >/dev/null || fail "version 2's record_epsilon is not $max2"
"$FEDFUSE_BIN/fedfusectl" --db "$DB" privacy feddigits | tee "$work/l.txt"
grep -q "refused" "$work/l.txt" || fail "fedfusectl privacy shows no refusal"
pass
