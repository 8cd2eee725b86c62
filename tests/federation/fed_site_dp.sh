#!/usr/bin/env bash
# (b) Central site-level DP with a model budget that admits two rounds but
# not three: versions 1 and 2 are published with their site-level epsilon,
# round 3 is refused before it opens (WARN line, "refused" model ledger
# row), the federation ends with status 0, and the ledger's epsilon is
# what the accountant gives for the recorded noise. A restarted
# coordinator rebuilds its accountant from the ledger and refuses again.
# The ledger's epsilon is also recomputed here, independently of the
# accountant, from z (the combined guarantee) and the recorded clips: with
# adaptive clipping the update carries the larger z_Delta, yet the round
# must be accounted with z. A restart with a higher --model-epsilon must
# not raise the stored budget; a start with a lower one lowers it.
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

# coord_refuses NAME PATTERN FLAGS...: the coordinator must refuse the
# configuration (exit 2) with a message matching PATTERN, before it
# serves or writes anything.
coord_refuses() {
  local name=$1 pattern=$2 rc=0
  shift 2
  timeout 20 "$FEDFUSE_BIN/fedfuse-coordinator" --listen 127.0.0.1:0 \
    --port-file "$work/$name.port" --db "$DB" \
    --test "$work/fd/test/manifest.jsonl" "${COORD_SEC[@]}" "$@" \
    >"$work/$name.out" 2>"$work/$name.err" || rc=$?
  [ "$rc" = 2 ] || fail "$name: expected exit 2 (configuration), got $rc"
  grep -E "$pattern" "$work/$name.err" ||
    fail "$name: no error matching '$pattern'"
  [ ! -s "$work/$name.port" ] || fail "$name: the coordinator served"
}

# Adaptive clipping with too few sites for its count's noise is a
# configuration error, not a round refused as if the budget were spent.
coord_refuses coord-adaptive-few "site-dp-adaptive on with --site-dp-noise \
1 needs min-sites above 10, got 3" --sites site-1,site-2,site-3 \
  --min-sites 3 --site-dp central --site-dp-noise 1 --site-dp-adaptive on
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

# The same epsilon computed independently (awk, not the accountant): per
# round, the update's std is z_u c (z_u = z, or with adaptive clipping
# z_Delta = (z^-2 - (2 n/20)^-2)^-1/2), its sensitivity c + gamma sqrt(p)
# (+ the quantisation slack sqrt(p) 2 c / max_value under SecAgg), gamma
# the power-of-two grid step with std / gamma in [2^16, 2^17); the count's
# std n/20, its sensitivity 1/2 + its grid step. Their RDP a / 2 (sum of
# squared sensitivity / std) adds over the rounds, over the orders of
# FF_ACCT_GRID_DEFAULT, and converts with eps = rdp + log(1 - 1/a) -
# (log delta + log a) / (a - 1). Accounting the update's z_u alone would
# give the smaller epsilon printed as "z_u alone".
jq -r '[.entries[] | select(.site == null and .status == "spent")] |
       .[] | "\(.params.clip) \(.params.dim)"' <<<"$L" >"$work/rounds.txt"
[ "$(wc -l <"$work/rounds.txt")" = 2 ] || fail "no clip and dim per round"
adaptive=0; secagg=0
[ "$variant" = secagg-adaptive ] && adaptive=1 && secagg=1
awk -v z="$z" -v n="$nsites" -v ad="$adaptive" -v sa="$secagg" \
    -v delta="$delta" -v got="$got" '
function grid(std,   e, x) {   # 2^(e - 17) with std = m 2^e, m in [.5, 1)
  e = 0; x = std
  while (x >= 1) { x /= 2; e++ }
  while (x < 0.5) { x *= 2; e-- }
  return 2 ^ (e - 17)
}
function eps(r,   i, a, e, best) {
  best = -1
  for (i = 1; i <= no; i++) {
    a = ord[i]; e = r * a / 2 + log(1 - 1 / a) - (log(delta) + log(a)) / (a - 1)
    if (best < 0 || e < best) best = e
  }
  return best
}
BEGIN {
  no = 0
  for (i = 1; i <= 99; i++) ord[++no] = 1 + i / 10
  for (i = 11; i <= 63; i++) ord[++no] = i
  ord[++no] = 128; ord[++no] = 256; ord[++no] = 512; ord[++no] = 1024
  cs = n / 20
  zu = ad ? 1 / sqrt(1 / (z * z) - 1 / (4 * cs * cs)) : z
  maxv = int(4294967295 / n)
}
{
  c = $1; p = $2
  su = c + grid(zu * c) * sqrt(p) + (sa ? sqrt(p) * 2 * c / maxv : 0)
  ru = su / (zu * c)
  rc = ad ? (0.5 + grid(cs)) / cs : 0
  rho += ru * ru + rc * rc        # sum over rounds of (1 / sigma)^2
  rho_u += 1 / (zu * zu)
}
END {
  want = eps(rho)
  d = got - want; if (d < 0) d = -d
  printf "independent epsilon after 2 rounds %.12f, ledger %.12f, "\
         "difference %.3g (tolerance 1e-9 relative); z %g, z_u %g, "\
         "z_u alone would give %.6f\n", want, got, d, z, zu, eps(rho_u)
  exit !(d <= 1e-9 * want) }' "$work/rounds.txt" ||
  fail "the ledger's epsilon is not the one computed from z"

# A restart rebuilds the accountant from the ledger: round 3 again refused.
# Its --model-epsilon above the stored budget must not raise it.
high=$(awk -v b="$e3" 'BEGIN { printf "%.6f", 2 * b }')
coord_start coord2 --sites "$sites" --rounds 4 --min-sites "$nsites" \
  --wait-sites 30 --deadline 10 --seed 5 --epochs 1 --site-dp central \
  --site-dp-clip 0.5 --site-dp-noise "$z" --model-epsilon "$high" \
  "${extra[@]}"
sites_run -again
num='[0-9.e+-]+'
grep -E "model-epsilon $num would raise the stored \
model budget \(epsilon $num, delta 1e-05\)" "$work/coord2.err" ||
  fail "the restart did not warn that it keeps the stored budget"
jq -e --argjson b "$budget" '.budget.epsilon == $b and
       .budget.delta == 1e-5' <<<"$(ctl privacy feddigits)" >/dev/null ||
  fail "the restart changed the stored budget"
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

# A start with a lower --model-epsilon (and no --model-delta) lowers the
# stored epsilon, keeps its delta, and audits the change.
low=$(awk -v b="$e2" 'BEGIN { printf "%.6f", b / 2 }')
sets=$(audit_count privacy.budget_set)
coord_start coord3 --sites "$sites" --rounds 2 --min-sites "$nsites" \
  --wait-sites 1 --site-dp central --site-dp-clip 0.5 \
  --site-dp-noise "$z" --model-epsilon "$low" "${extra[@]}"
expect_exit "$COORD_PID" 30 "coordinator coord3"
grep -E "model budget lowered .*: epsilon $num -> $num, delta 1e-05 -> \
1e-05" "$work/coord3.err" || fail "the lower --model-epsilon was not applied"
jq -e --argjson b "$low" '.budget.epsilon == $b and .budget.delta == 1e-5' \
  <<<"$(ctl privacy feddigits)" >/dev/null ||
  fail "the stored budget was not lowered to $low"
[ "$(audit_count privacy.budget_set)" = $((sets + 1)) ] ||
  fail "lowering the budget was not audited"
pass
