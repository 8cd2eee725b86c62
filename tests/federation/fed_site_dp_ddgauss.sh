#!/usr/bin/env bash
# (c) Distributed site-level DP (DDGauss under secure aggregation) with
# four sites; site-4 kills itself before sending its masked vector in
# round 1 (FEDFUSE_TEST_STOP_AT=mask), so only three of the four planned
# noise shares arrive. Both rounds publish with mechanism ddgauss and a
# finite epsilon, and round 1 (3 of 4 shares) costs more epsilon than
# round 2 (all 3 planned shares arrived): dropouts are accounted with the
# noise that actually arrived.
# Then: adaptive clipping under distributed DP is refused as a
# configuration error (the count would reach the coordinator unnoised);
# with --min-sites 4 and site-4 killed again at the masked input, round 3
# aborts BEFORE unmasking (no unmasking stage, no model ledger row); and a
# round whose sum was unmasked but which then aborts (here the registry
# refuses its ordinary model row) is still accounted: a "spent" model row
# naming the abort, which a restarted coordinator replays.
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

# Adaptive clipping needs central mode.
rc=0
timeout 20 "$FEDFUSE_BIN/fedfuse-coordinator" --listen 127.0.0.1:0 \
  --port-file "$work/coord-adaptive.port" --db "$DB" \
  --test "$work/fd/test/manifest.jsonl" "${COORD_SEC[@]}" \
  --sites site-1,site-2,site-3,site-4 --min-sites 3 --secagg on \
  --site-dp distributed --site-dp-adaptive on \
  >"$work/coord-adaptive.out" 2>"$work/coord-adaptive.err" || rc=$?
[ "$rc" = 2 ] || fail "distributed adaptive clipping: expected exit 2, got $rc"
grep -E "adaptive clipping needs central mode: under distributed DP the \
count would reach the coordinator unnoised" "$work/coord-adaptive.err" ||
  fail "distributed adaptive clipping was not refused as a configuration"

# sites_kill PIDS...: stops sites a failed coordinator left polling.
sites_kill() {
  local p
  for p in "$@"; do kill -KILL "$p" 2>/dev/null || true; wait "$p" || true
  done
}

# Round 3: 3 masked inputs, min-sites 4: aborted before unmasking.
coord_start coord2 --sites site-1,site-2,site-3,site-4 --rounds 3 \
  --min-sites 4 --wait-sites 30 --deadline 30 --seed 9 --epochs 1 \
  --secagg on --secagg-stage-deadline 4 --site-dp distributed \
  --site-dp-clip 0.5 --site-dp-noise 1.0 --site-dp-bits 20
site_start site-1 site-1 site-1-b; s1=$SITE_PID
site_start site-2 site-2 site-2-b; s2=$SITE_PID
site_start site-3 site-3 site-3-b; s3=$SITE_PID
FEDFUSE_TEST_STOP_AT=mask site_start site-4 site-4 site-4-b; s4=$SITE_PID
wait_exit "$COORD_PID" 60
[ "$RC" = 1 ] || fail "coord2 (nothing published) exited $RC, expected 1"
sites_kill "$s1" "$s2" "$s3" "$s4"
grep -E "round 3 aborted: only 3 of min-sites 4 masked inputs arrived; the \
sum is not unmasked" "$work/coord2.err" ||
  fail "round 3 was not aborted before unmasking"
! grep -q "secagg stage masking -> unmasking (round 3)" "$work/coord2.err" ||
  fail "round 3 reached the unmasking stage"
jq -e '[.entries[] | select(.site == null and .round == 3)] | length == 0' \
  <<<"$(ctl privacy feddigits)" >/dev/null ||
  fail "round 3, never unmasked, has a model ledger row"

# Round 4: unmasked, then its ordinary model row is refused by a trigger
# (as a failing registry would): the round aborts and is accounted anyway.
psql -d "$DB" -v ON_ERROR_STOP=1 -q -c "
CREATE FUNCTION test_refuse_model_row() RETURNS trigger LANGUAGE plpgsql AS
  \$\$ BEGIN RAISE EXCEPTION 'test: model row of round 4 refused'; END \$\$;
CREATE TRIGGER test_refuse_model_row BEFORE INSERT ON privacy_ledger
  FOR EACH ROW WHEN (NEW.site IS NULL AND NEW.round = 4 AND
                     NEW.reason IS NULL)
  EXECUTE FUNCTION test_refuse_model_row();" ||
  fail "cannot install the test trigger"
coord_start coord3 --sites site-1,site-2,site-3,site-4 --rounds 4 \
  --min-sites 3 --wait-sites 5 --deadline 30 --seed 9 --epochs 1 \
  --secagg on --secagg-stage-deadline 4 --site-dp distributed \
  --site-dp-clip 0.5 --site-dp-noise 1.0 --site-dp-bits 20
site_start site-1 site-1 site-1-c; s1=$SITE_PID
site_start site-2 site-2 site-2-c; s2=$SITE_PID
site_start site-3 site-3 site-3-c; s3=$SITE_PID
wait_exit "$COORD_PID" 60
[ "$RC" = 1 ] || fail "coord3 (nothing published) exited $RC, expected 1"
sites_kill "$s1" "$s2" "$s3"
grep -E "round 4 accounted although not published: round aborted after its \
noised sum was unmasked \(3 noise shares\): privacy ledger: .*; the \
model's epsilon is now" \
  "$work/coord3.err" || fail "the unmasked, aborted round 4 was not accounted"
L=$(ctl privacy feddigits)
jq -c '.entries[] | select(.site == null) | {round, status, epsilon,
       reason, arrived: .params.arrived}' <<<"$L"
jq -e '[.entries[] | select(.site == null)] as $m |
       ($m | length) == 3 and $m[2].round == 4 and $m[2].status == "spent" and
       $m[2].mechanism == "ddgauss" and $m[2].params.arrived == 3 and
       $m[2].params.clients == 3 and
       ($m[2].reason | test("aborted after its noised sum was unmasked")) and
       $m[2].epsilon > $m[1].epsilon' <<<"$L" >/dev/null ||
  fail "round 4's model ledger row is missing or wrong"
[ "$(jq length <<<"$(ctl versions feddigits)")" = 2 ] ||
  fail "an aborted round published a version"

# A restart replays it: three model rows rebuild the accountant.
psql -d "$DB" -q -c "DROP TRIGGER test_refuse_model_row ON privacy_ledger" ||
  fail "cannot drop the test trigger"
coord_start coord4 --sites site-1,site-2,site-3,site-4 --rounds 4 \
  --min-sites 3 --wait-sites 1 --secagg on --site-dp distributed \
  --site-dp-clip 0.5 --site-dp-noise 1.0 --site-dp-bits 20
expect_exit "$COORD_PID" 30 "coordinator coord4"
grep "model accountant rebuilt from 3 ledger rows" "$work/coord4.err" ||
  fail "the restart did not replay the aborted round's row"
pass
