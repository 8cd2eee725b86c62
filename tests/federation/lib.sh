# lib.sh - shared by the federation integration tests (sourced).
#
# Each test gets its own temporary folder, its own database in the
# PostgreSQL server named by FEDFUSE_TEST_PG, and a small feddigits
# federation; it starts real coordinator and site processes on loopback.
# Calls run over mutual TLS: setup makes a consortium CA, the coordinator's
# certificate and (on first use, in site_start) each site's certificate
# with the real commands (fedfusectl ca init / coordinator cert / sites
# approve, fedfuse-site enroll). A test that needs an insecure federation
# sets TLS=off before setup. Every coordinator of a test signs with the
# same key ($work/signing_key), which the sites pin.
# Every wait is bounded in time; every process started here is killed and
# the database dropped on exit (both kept when FEDFUSE_TEST_KEEP is set).
# On failure the logs are printed.
set -euo pipefail

: "${FEDFUSE_BIN:?FEDFUSE_BIN must name the folder of the built programs}"
: "${FEDFUSE_DATA:?FEDFUSE_DATA must name the shared datasets folder}"
if [ -z "${FEDFUSE_TEST_PG:-}" ]; then
  echo "FAIL: FEDFUSE_TEST_PG is not set: this test needs a PostgreSQL" \
       "server (deploy/test.sh starts one with deploy/pg.sh)" >&2
  exit 1
fi

test_name=$(basename "$0" .sh)
work=$(mktemp -d "/tmp/fedfuse-${test_name}.XXXXXX")
dbname="ff_${test_name//-/_}_$$"
DB="$FEDFUSE_TEST_PG dbname=$dbname"
pids=()
failed=1
t0=$(date +%s)
TLS=${TLS:-on}
pki=
COORD_SEC=()
SITE_SEC=()

# Kills what we started, drops the database, prints logs when we failed.
cleanup() {
  local p
  for p in "${pids[@]}"; do
    kill -CONT "$p" 2>/dev/null || true
    kill -KILL "$p" 2>/dev/null || true
  done
  wait 2>/dev/null || true
  if [ "$failed" -ne 0 ]; then
    for f in "$work"/*.err "$work"/*.out; do
      [ -f "$f" ] || continue
      echo "----- $(basename "$f") (last 60 lines)"
      tail -n 60 "$f"
    done
  fi
  if [ -n "${FEDFUSE_TEST_KEEP:-}" ]; then
    echo "kept $work and database $dbname (FEDFUSE_TEST_KEEP)"
    return
  fi
  psql -d "$FEDFUSE_TEST_PG" -q -c "DROP DATABASE IF EXISTS $dbname" \
    >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT

fail() {
  echo "FAIL: $*" >&2
  exit 1
}

pass() {
  failed=0
  echo "PASS: $test_name in $(( $(date +%s) - t0 )) s"
}

# Creates the test's database and builds a small feddigits federation.
setup() {
  psql -d "$FEDFUSE_TEST_PG" -v ON_ERROR_STOP=1 -q \
    -c "SET client_min_messages = warning" \
    -c "DROP DATABASE IF EXISTS $dbname" -c "CREATE DATABASE $dbname" \
    >/dev/null || fail "cannot create database $dbname"
  "$FEDFUSE_BIN/fedfuse-feddigits" --data "$FEDFUSE_DATA" --out "$work/fd" \
    --records 150 --test-records 200 >"$work/feddigits.out" \
    2>"$work/feddigits.err" || fail "fedfuse-feddigits failed"
  tls_ensure
}

# op ARGS...: fedfusectl on the test's database as operator op1.
op() {
  tls_ensure
  "$FEDFUSE_BIN/fedfusectl" --db "$DB" --cert "$pki/ca/operators/op1.crt" \
    --key "$pki/ca/operators/op1.key" --ca "$pki/ca/ca.crt" "$@"
}

# tls_ensure: makes sure the database in $DB has its consortium CA
# (operator op1) and coordinator certificate (one PKI per database, in
# $work/pki-DBNAME, since the registry records every certificate); sets
# pki and COORD_SEC, the coordinator's security flags.
tls_ensure() {
  COORD_SEC=(--signing-key "$work/signing_key")
  if [ "$TLS" = off ]; then
    COORD_SEC+=(--tls off)
    return 0
  fi
  pki=$work/pki-${DB##*dbname=}
  if [ ! -f "$pki/coordinator.crt" ]; then
    mkdir -p "$pki/sites"
    "$FEDFUSE_BIN/fedfusectl" --db "$DB" migrate >>"$work/pki.out" \
      2>>"$work/pki.err" || fail "fedfusectl migrate failed"
    "$FEDFUSE_BIN/fedfusectl" --db "$DB" ca init --dir "$pki/ca" \
      --name "fedfuse test CA" --operator op1 >>"$work/pki.out" \
      2>>"$work/pki.err" || fail "fedfusectl ca init failed"
    "$FEDFUSE_BIN/fedfusectl" --db "$DB" --cert \
      "$pki/ca/operators/op1.crt" --key "$pki/ca/operators/op1.key" \
      --ca "$pki/ca/ca.crt" coordinator cert --ca-dir "$pki/ca" \
      --hosts 127.0.0.1,localhost --out "$pki/coordinator" \
      >>"$work/pki.out" 2>>"$work/pki.err" ||
      fail "fedfusectl coordinator cert failed"
  fi
  COORD_SEC+=(--ca "$pki/ca/ca.crt" --cert "$pki/coordinator.crt"
              --key "$pki/coordinator.key")
}

# site_enroll ID: the site makes its key and CSR (fedfuse-site enroll),
# operator op1 approves it; once per ID. Leaves $pki/sites/ID.{key,crt}.
site_enroll() {
  local id=$1
  [ "$TLS" = off ] && return 0
  tls_ensure
  [ -f "$pki/sites/$id.crt" ] && return 0
  "$FEDFUSE_BIN/fedfuse-site" enroll --id "$id" --key "$pki/sites/$id.key" \
    --csr "$pki/sites/$id.csr" >>"$work/pki.out" 2>>"$work/pki.err" ||
    fail "fedfuse-site enroll $id failed"
  op sites approve "$pki/sites/$id.csr" --ca-dir "$pki/ca" \
    --out "$pki/sites/$id.crt" >>"$work/pki.out" 2>>"$work/pki.err" ||
    fail "fedfusectl sites approve $id failed"
}

# site_sec ID: enrols ID when needed and sets SITE_SEC, the site's
# security flags (its certificate, the CA, the pinned coordinator key).
site_sec() {
  local id=$1
  SITE_SEC=(--coordinator-key-file "$work/signing_key.pub")
  if [ "$TLS" = off ]; then
    SITE_SEC+=(--tls off)
    return 0
  fi
  site_enroll "$id"
  SITE_SEC+=(--ca "$pki/ca/ca.crt" --cert "$pki/sites/$id.crt"
             --key "$pki/sites/$id.key")
}

# coord_start NAME [coordinator flags...]: starts a coordinator on a free
# port, logs in $work/NAME.{out,err}; sets COORD_PID and PORT. Rounds are
# summed in the clear (--secagg off) unless the flags say otherwise.
coord_start() {
  local name=$1 i
  shift
  tls_ensure
  rm -f "$work/$name.port"
  "$FEDFUSE_BIN/fedfuse-coordinator" --listen 127.0.0.1:0 \
    --port-file "$work/$name.port" --db "$DB" \
    --test "$work/fd/test/manifest.jsonl" --poll-interval 200 \
    --finish-grace 5 --threads 1 --epochs 3 --secagg off \
    "${COORD_SEC[@]}" "$@" \
    >"$work/$name.out" 2>"$work/$name.err" &
  COORD_PID=$!
  pids+=("$COORD_PID")
  for i in $(seq 150); do
    [ -s "$work/$name.port" ] && break
    kill -0 "$COORD_PID" 2>/dev/null || fail "coordinator $name exited early"
    sleep 0.1
  done
  [ -s "$work/$name.port" ] || fail "coordinator $name wrote no port in 15 s"
  PORT=$(cat "$work/$name.port")
}

# site_start ID SITE_DIR [LOG [FLAGS...]]: starts fedfuse-site ID on
# SITE_DIR's records, logging to $work/LOG.{out,err} (LOG defaults to ID),
# its privacy ledger in $work/LOG.ledger; sets SITE_PID. Record-level DP
# is off (these tests are about the federation) unless FLAGS say
# --dp on; FLAGS come last and override. The site gets its own
# certificate (site_sec ID) unless FLAGS name others.
site_start() {
  local id=$1 dir=$2 log=${3:-$1}
  shift $(( $# >= 3 ? 3 : $# ))
  site_sec "$id"
  "$FEDFUSE_BIN/fedfuse-site" --id "$id" --coordinator "127.0.0.1:$PORT" \
    --manifest "$work/fd/$dir/manifest.jsonl" --threads 1 \
    --retry-seconds 20 --dp off --ledger "$work/$log.ledger" \
    "${SITE_SEC[@]}" "$@" \
    >"$work/$log.out" 2>"$work/$log.err" &
  SITE_PID=$!
  pids+=("$SITE_PID")
}

# wait_exit PID SECONDS: waits for PID (a child of this shell) to exit;
# sets RC to its exit status, or "timeout".
wait_exit() {
  local pid=$1 limit=$2 i
  for i in $(seq $((limit * 10))); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  if kill -0 "$pid" 2>/dev/null; then
    RC=timeout
    return 0
  fi
  RC=0
  wait "$pid" || RC=$?
}

# expect_exit PID SECONDS WHAT: fails unless PID exits 0 in time.
expect_exit() {
  wait_exit "$1" "$2"
  [ "$RC" = 0 ] || fail "$3 did not exit 0 within $2 s (got $RC)"
}

# wait_log FILE PATTERN SECONDS: waits until FILE holds PATTERN (grep -E).
wait_log() {
  local i
  for i in $(seq $(($3 * 20))); do
    grep -qE "$2" "$1" 2>/dev/null && return 0
    sleep 0.05
  done
  fail "no line matching '$2' in $(basename "$1") within $3 s"
}

# ctl ARGS...: fedfusectl on the test's database, JSON output.
ctl() {
  "$FEDFUSE_BIN/fedfusectl" --db "$DB" --json "$@"
}

# audit_count ACTION [SITE]: number of audit rows of ACTION (for SITE).
audit_count() {
  if [ $# -ge 2 ]; then
    ctl audit --action "$1" --site "$2" | jq 'length'
  else
    ctl audit --action "$1" | jq 'length'
  fi
}
