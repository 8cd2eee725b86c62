#!/usr/bin/env bash
# The main job of fedfuse on one machine: installs what is missing, builds,
# builds the feddigits federation from the public datasets, starts a
# throwaway PostgreSQL registry, enrols a coordinator and six sites under a
# new consortium CA, trains the local and centralised baselines, then runs
# the coordinator and the sites over mutual TLS on loopback, with DP-SGD at
# every site, for the configured rounds; prints the results, the registry's
# lineage and privacy ledger, promotes the best version with two operators
# and prints the production history.
#
# Usage: deploy/demo.sh [--out DIR] [--data DIR] [--rounds N] [--epochs N]
#                       [--seed N] [--alpha A] [--no-secagg] [--no-dp]
#                       [--epsilon E] [--keep] [--help]
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)

out=""
data="$root/../shared/data"
rounds=10
epochs=2
seed=1
alpha=0.5
keep=0
secagg=on
dp=on
epsilon=8
dp_delta=1e-5
dp_batch=256
dp_lr=0.03
sites=(site-1 site-2 site-3 site-4 site-5 site-6)

usage() {
  sed -n '2,13p' "$0" | sed 's/^# \{0,1\}//'
  cat <<TXT

Options:
  --out DIR      folder for everything the demo produces (default out/demo-TIME)
  --data DIR     public datasets, read in place (default ../shared/data)
  --rounds N     federated rounds (default $rounds)
  --epochs N     local epochs per round (default $epochs)
  --seed N       seed of the dataset split and of training (default $seed)
  --alpha A      Dirichlet concentration of each site's label mix (default $alpha)
  --no-secagg    sum the rounds in the clear (default: secure aggregation)
  --no-dp        train without record-level differential privacy (default:
                 DP-SGD at every site, epsilon $epsilon at delta $dp_delta per site)
  --epsilon E    each site's record-level budget over all rounds (default $epsilon)
  --keep         leave PostgreSQL running and print how to query it
TXT
}

while [ $# -gt 0 ]; do
  case "$1" in
    --out) out=$2; shift 2 ;;
    --data) data=$2; shift 2 ;;
    --rounds) rounds=$2; shift 2 ;;
    --epochs) epochs=$2; shift 2 ;;
    --seed) seed=$2; shift 2 ;;
    --alpha) alpha=$2; shift 2 ;;
    --keep) keep=1; shift ;;
    --no-secagg) secagg=off; shift ;;
    --no-dp) dp=off; shift ;;
    --epsilon) epsilon=$2; shift 2 ;;
    -h|--help) usage; exit 0 ;;
    *) echo "demo: unknown option $1 (see --help)" >&2; exit 2 ;;
  esac
done

t0=$(date +%s)
say() { printf '[demo %4ds] %s\n' "$(( $(date +%s) - t0 ))" "$*"; }

[ -d "$data/mnist" ] || { echo "demo: datasets not found in $data (use --data)" >&2; exit 1; }
data=$(cd "$data" && pwd)
[ -n "$out" ] || out="$root/out/demo-$(date +%Y%m%d-%H%M%S)"
mkdir -p "$out/logs"
out=$(cd "$out" && pwd)

# 1. install and build
say "installing dependencies"
"$root/deploy/install-deps.sh"

# PostgreSQL runs as the postgres user when we are root, and its socket path
# must stay short: when OUT does not suit it, the cluster lives in a /tmp
# folder and OUT/pg links to it.
pg_suits() {
  local d=$1 p=$1
  [ ${#d} -le 80 ] || return 1
  [ "$(id -u)" -ne 0 ] && return 0
  while [ ! -d "$p" ]; do p=$(dirname "$p"); done
  runuser -u postgres -- test -x "$p" 2>/dev/null
}
if pg_suits "$out/pg"; then
  pgdir="$out/pg"
else
  pgdir=$(mktemp -d /tmp/fedfuse-demo-pg.XXXXXX)
  ln -sfn "$pgdir" "$out/pg"
  say "note: $out is closed to the postgres user or too long for a socket path;"
  say "      PostgreSQL lives in $pgdir (linked from $out/pg)"
fi
say "building"
"$root/deploy/build.sh" "$root/build"
bin="$root/build/bin"

# 2. the federation's data
say "building the feddigits federation (seed $seed, alpha $alpha)"
"$bin/fedfuse-feddigits" --data "$data" --out "$out/feddigits" --seed "$seed" \
  --alpha "$alpha" >"$out/logs/feddigits.log" 2>&1 \
  || { tail -20 "$out/logs/feddigits.log" >&2; exit 1; }
jq -r '.sites[] | "  \(.name): \(.records) records, modalities \(.present | to_entries | map(select(.value > 0) | "\(.key)=\(.value)") | join(" "))"' \
  "$out/feddigits/summary.json" 2>/dev/null || true

# 3. the registry
say "starting PostgreSQL in $pgdir"
db=$("$root/deploy/pg.sh" start "$pgdir")
pids=()
stop_all() {
  for p in "${pids[@]:-}"; do [ -n "$p" ] && kill "$p" 2>/dev/null || true; done
  if [ "$keep" -eq 0 ]; then "$root/deploy/pg.sh" stop "$pgdir" >/dev/null 2>&1 || true; fi
}
trap stop_all EXIT

# 4. enrolment: the consortium's CA with two operators (alice, bob), the
# coordinator's certificate, and each site's key pair made locally
# (fedfuse-site enroll) with its certificate approved by alice. All traffic
# to the coordinator is mutual TLS; every model is signed by the
# coordinator's key, which the sites pin.
pki=$out/pki
mkdir -p "$pki/sites"
ctl() { "$bin/fedfusectl" --db "$db" "$@"; }
as_op() { # NAME ARGS...: fedfusectl as operator NAME
  local who=$1; shift
  ctl --cert "$pki/$who.crt" --key "$pki/$who.key" --ca "$pki/ca/ca.crt" "$@"
}
say "enrolling: consortium CA, operators alice and bob, the coordinator and ${#sites[@]} sites"
{
  ctl migrate
  ctl ca init --dir "$pki/ca" --name "feddigits consortium CA" --operator alice
  ln -sf "ca/operators/alice.crt" "$pki/alice.crt"
  ln -sf "ca/operators/alice.key" "$pki/alice.key"
  "$bin/fedfusectl" keygen --id bob --role operator --key "$pki/bob.key" --csr "$pki/bob.csr"
  as_op alice operators add "$pki/bob.csr" --role operator --ca-dir "$pki/ca" --out "$pki/bob.crt"
  as_op alice coordinator cert --ca-dir "$pki/ca" --hosts 127.0.0.1,localhost \
    --out "$pki/coordinator"
  for s in "${sites[@]}"; do
    "$bin/fedfuse-site" enroll --id "$s" --key "$pki/sites/$s.key" --csr "$pki/sites/$s.csr"
    as_op alice sites approve "$pki/sites/$s.csr" --ca-dir "$pki/ca" --out "$pki/sites/$s.crt"
  done
} >"$out/logs/enrol.log" 2>&1 || { tail -20 "$out/logs/enrol.log" >&2; exit 1; }
as_op alice sites list | sed 's/^/  /'

# 5. baselines: each site alone, and all sites pooled, for the same epochs
total_epochs=$(( rounds * epochs ))
say "training baselines: 6 local models and 1 centralised model, $total_epochs epochs each"
mkdir -p "$out/baselines"
train() { # name manifests...
  local name=$1; shift
  local args=()
  for m in "$@"; do args+=(--manifest "$m"); done
  "$bin/fedfuse-train" "${args[@]}" --test "$out/feddigits/test/manifest.jsonl" \
    --epochs "$total_epochs" --seed "$seed" --threads 1 \
    --json "$out/baselines/$name.json" >"$out/logs/train-$name.log" 2>&1
}
all_manifests=()
for s in "${sites[@]}"; do all_manifests+=("$out/feddigits/$s/manifest.jsonl"); done
train centralised "${all_manifests[@]}" &
cpid=$!
for s in "${sites[@]}"; do train "local-$s" "$out/feddigits/$s/manifest.jsonl"; done
wait "$cpid"
for s in "${sites[@]}"; do
  printf '  local %-7s accuracy %s\n' "$s" "$(jq -r '.accuracy' "$out/baselines/local-$s.json")"
done
printf '  centralised     accuracy %s\n' "$(jq -r '.accuracy' "$out/baselines/centralised.json")"

# 6. the federation. Under DP-SGD every site plans its noise so that the
# configured rounds spend exactly its budget; noisy clipped gradients want
# larger batches and a larger step than plain training.
lr_args=()
site_dp=(--dp off)
if [ "$dp" = on ]; then
  lr_args=(--lr "$dp_lr")
  site_dp=(--dp on --epsilon-budget "$epsilon" --delta "$dp_delta"
           --batch "$dp_batch" --planned-rounds "$rounds"
           --noise-multiplier 0)
  say "record-level DP: DP-SGD at each site, epsilon <= $epsilon at delta $dp_delta" \
      "over $rounds rounds (expected batch $dp_batch, learning rate $dp_lr)"
fi
say "starting the coordinator and ${#sites[@]} sites on loopback ($rounds rounds)"
"$bin/fedfuse-coordinator" --listen 127.0.0.1:0 --port-file "$out/coordinator.port" \
  --db "$db" --model feddigits --test "$out/feddigits/test/manifest.jsonl" \
  --sites "$(IFS=,; echo "${sites[*]}")" --rounds "$rounds" --min-sites 4 \
  --wait-sites 60 --deadline 120 --epochs "$epochs" --seed "$seed" --threads 1 \
  --secagg "$secagg" "${lr_args[@]}" \
  --ca "$pki/ca/ca.crt" --cert "$pki/coordinator.crt" --key "$pki/coordinator.key" \
  --signing-key "$pki/signing_key" \
  >"$out/logs/coordinator.out" 2>"$out/logs/coordinator.log" &
coord=$!
pids+=("$coord")
for _ in $(seq 100); do [ -s "$out/coordinator.port" ] && break; sleep 0.1; done
[ -s "$out/coordinator.port" ] || { echo "demo: coordinator did not start" >&2; tail "$out/logs/coordinator.log" >&2; exit 1; }
port=$(cat "$out/coordinator.port")
for _ in $(seq 100); do [ -s "$pki/signing_key.pub" ] && break; sleep 0.1; done
say "coordinator signing key $(cat "$pki/signing_key.pub") (pinned by every site)"
for s in "${sites[@]}"; do
  "$bin/fedfuse-site" --id "$s" --coordinator "127.0.0.1:$port" \
    --manifest "$out/feddigits/$s/manifest.jsonl" --threads 1 \
    --ledger "$out/privacy-$s.json" "${site_dp[@]}" \
    --ca "$pki/ca/ca.crt" --cert "$pki/sites/$s.crt" --key "$pki/sites/$s.key" \
    --coordinator-key-file "$pki/signing_key.pub" \
    >"$out/logs/$s.out" 2>"$out/logs/$s.log" &
  pids+=("$!")
done

# progress: one line per published round, read from the coordinator's
# metrics, and each site's cumulative record-level epsilon after that round
round_epsilons() { # "METRIC round round=R ..."
  [ "$dp" = on ] || return 0
  local r eps="" s e
  r=$(sed -n 's/.* round=\([0-9]*\) .*/\1/p' <<<"$1")
  for s in "${sites[@]}"; do
    e=$(grep "^METRIC dp site=$s round=$r " "$out/logs/$s.out" 2>/dev/null |
        sed -n 's/.* status=\([a-z]*\) epsilon=\([^ ]*\) .*/\2 (\1)/p' | tail -1)
    eps+=" $s=${e:-?}"
  done
  say "    epsilon after round $r:${eps// (spent)/}"
}
shown=0
while kill -0 "$coord" 2>/dev/null; do
  n=$(grep -c '^METRIC round ' "$out/logs/coordinator.out" || true)
  while [ "$shown" -lt "$n" ]; do
    shown=$((shown + 1))
    line=$(grep '^METRIC round ' "$out/logs/coordinator.out" | sed -n "${shown}p")
    say "  ${line#METRIC round }"
    round_epsilons "$line"
  done
  sleep 1
done
wait "$coord" || { echo "demo: coordinator failed; see $out/logs/coordinator.log" >&2; tail -20 "$out/logs/coordinator.log" >&2; exit 1; }
for line in $(seq $((shown + 1)) "$(grep -c '^METRIC round ' "$out/logs/coordinator.out")"); do
    l=$(grep '^METRIC round ' "$out/logs/coordinator.out" | sed -n "${line}p")
  say "  ${l#METRIC round }"
  round_epsilons "$l"
done
for p in "${pids[@]:1}"; do wait "$p" 2>/dev/null || true; done

# 7. results
ctl --json versions feddigits >"$out/versions.json"
ctl --json privacy feddigits >"$out/ledger.json"
last=$(jq '.[-1]' "$out/versions.json")
local_best=$(jq -s 'map(.accuracy) | max' "$out"/baselines/local-*.json)
best_site=$(for s in "${sites[@]}"; do
  echo "$(jq -r .accuracy "$out/baselines/local-$s.json") $s"; done | sort -rn | head -1 | cut -d' ' -f2)
jq -n --argjson last "$last" --argjson lb "$local_best" \
  --slurpfile c "$out/baselines/centralised.json" --argjson rounds "$rounds" \
  --arg seed "$seed" --arg alpha "$alpha" --arg best "$best_site" \
  --argjson secagg "$([ "$secagg" = on ] && echo true || echo false)" \
  --slurpfile ledger "$out/ledger.json" --arg dp "$dp" \
  --argjson budget "$epsilon" --argjson delta "$dp_delta" '{
    final: {all: $last.metrics.accuracy, image: $last.metrics.alone.image,
            audio: $last.metrics.alone.audio, pen: $last.metrics.alone.pen,
            text: $last.metrics.alone.text},
    baselines: {local_best: $lb, local_best_site: $best, centralised: $c[0].accuracy,
                federated: $last.metrics.accuracy},
    rounds: $rounds, version: $last.version, seed: ($seed|tonumber),
    alpha: ($alpha|tonumber), secagg: $secagg,
    dp: (if $dp == "on" then {
           level: "record", mechanism: "dp-sgd", epsilon_budget: $budget,
           delta: $delta,
           epsilon: ($ledger[0].entries | map(select(.site != null and .status == "spent"))
                     | group_by(.site) | map({key: .[0].site, value: (max_by(.round).epsilon)})
                     | from_entries),
           refusals: ($ledger[0].entries | map(select(.status == "refused")) | length),
           noise_multiplier: ($ledger[0].entries | map(select(.site != null and .status == "spent"))
                     | group_by(.site) | map({key: .[0].site, value: (max_by(.round).noise_multiplier)})
                     | from_entries),
           record_epsilon_final: $last.privacy.record_epsilon}
         else {level: "none", mechanism: "none"} end)}' >"$out/results.json"

echo
echo "== Final global model (version $(jq -r .version "$out/results.json")) on the 2,000-record test set"
jq -r '.final | "  all modalities \(.all)\n  image alone    \(.image)\n  audio alone    \(.audio)\n  pen alone      \(.pen)\n  text alone     \(.text)"' "$out/results.json"
echo
echo "== Baselines (all-modality test accuracy)"
jq -r '.baselines | "  best local site \(.local_best) (\(.local_best_site) alone)\n  centralised     \(.centralised)\n  federated       \(.federated)"' "$out/results.json"
echo
echo "== Registry lineage: fedfusectl versions feddigits"
ctl versions feddigits
echo
echo "== Privacy ledger: fedfusectl privacy feddigits (epsilon per site per round)"
ctl privacy feddigits
if [ "$dp" = on ]; then
  echo
  jq -r '.dp | "  record-level DP-SGD, delta \(.delta): final epsilon per site " +
    (.epsilon | to_entries | map("\(.key)=\(.value * 1000 | round / 1000)") | join(" ")) +
    " (budget \(.epsilon_budget))"' "$out/results.json"
fi
echo
best=$(jq -r 'max_by(.metrics.accuracy) | .version' "$out/versions.json")
echo "== Promotion: version $best (best test accuracy) to production, four eyes"
as_op alice promote feddigits "$best" --to production \
  --reason "best test accuracy of the demo run" | sed 's/^/  alice: /'
as_op bob approve feddigits "$best" | sed 's/^/  bob:   /'
echo
echo "== fedfusectl history feddigits"
ctl history feddigits
echo
echo "== fedfusectl audit verify --key COORDINATOR_KEY"
ctl audit verify --key "$(cat "$pki/signing_key.pub")"
echo
ctl export feddigits "$(jq -r .version "$out/results.json")" "$out/final-model.ffm"
echo
say "done; everything is in $out (results.json, logs/, pg/)"
if [ "$keep" -eq 1 ]; then
  echo "PostgreSQL stays up. Query it with:"
  echo "  FEDFUSE_DB='$db' $bin/fedfusectl status"
  echo "Stop it with: $root/deploy/pg.sh stop $pgdir"
fi
