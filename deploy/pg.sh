#!/usr/bin/env bash
# A throwaway PostgreSQL cluster for tests and demos: socket only (no TCP
# listener), trust authentication, durability switched off for speed.
#
# Usage: deploy/pg.sh start|stop|status|conninfo DIR
#   start     initdb into DIR/data when absent, start the server with its
#             socket in DIR/sock, create database "fedfuse", print the
#             libpq conninfo on stdout. Already running: just print it.
#   stop      stop the server (fast shutdown); nothing running is fine.
#   status    exit 0 when the server runs, 1 otherwise.
#   conninfo  print the conninfo of the cluster in DIR.
#
# PostgreSQL refuses to run as root, so as root the server runs as the
# "postgres" system user (created when missing). DIR must be reachable by
# that user: a DIR under a folder closed to it (such as /root) is refused
# with a message; use a folder under /tmp. DIR itself is created when
# missing and handed to that user. Not as root, the server runs as you.
set -euo pipefail

prog=pg.sh
die() { echo "$prog: $*" >&2; exit 1; }
usage() {
  echo "usage: $prog start|stop|status|conninfo DIR" >&2
  exit 2
}

case ${1:-} in -h|--help) sed -n '2,17p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;; esac
[ $# -eq 2 ] || usage
cmd=$1
case $cmd in start|stop|status|conninfo) ;; *) usage ;; esac
[ -n "$2" ] || usage

# DIR as an absolute, normalised path that fits in a libpq conninfo and in
# a Unix socket address (108 bytes including ".s.PGSQL.5432").
dir=$(realpath -m -- "$2")
case $dir in
  *[[:space:]\'\"\\]*) die "DIR must not contain spaces, quotes or backslashes: $dir" ;;
esac
data=$dir/data
sock=$dir/sock
[ ${#sock} -le 90 ] || die "DIR is too long for a Unix socket path: $sock"
conninfo="host=$sock dbname=fedfuse user=postgres"

# The newest installed server binaries.
pgbin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)
[ -n "$pgbin" ] && [ -x "$pgbin/pg_ctl" ] ||
  die "no PostgreSQL server found under /usr/lib/postgresql/*/bin (apt-get install postgresql)"

# Who runs the server: the postgres system user when we are root.
if [ "$(id -u)" -eq 0 ]; then
  pguser=postgres
  as_pg() { (cd / && runuser -u "$pguser" -- "$@"); }
else
  pguser=$(id -un)
  as_pg() { (cd / && "$@"); }
fi

ensure_user() {
  [ "$(id -u)" -eq 0 ] || return 0
  id -u "$pguser" >/dev/null 2>&1 && return 0
  useradd --system --user-group --no-create-home \
    --shell /usr/sbin/nologin "$pguser" ||
    die "could not create the system user $pguser"
}

# Refuses a DIR whose parent folders the server user cannot enter (DIR
# itself is handed to that user), before creating anything there.
check_reachable() {
  local up
  up=$(dirname "$dir")
  while [ ! -e "$up" ]; do up=$(dirname "$up"); done
  as_pg test -x "$up" ||
    die "user $pguser cannot reach $dir ($up is closed to it); use a folder under /tmp"
}

running() { as_pg "$pgbin/pg_ctl" -D "$data" status >/dev/null 2>&1; }

do_init() {
  if [ -f "$data/PG_VERSION" ]; then return 0; fi
  if [ -d "$data" ] && [ -n "$(ls -A "$data")" ]; then
    die "$data exists, is not empty and holds no cluster"
  fi
  mkdir -p "$data" "$sock"
  chown "$pguser:" "$dir" "$data" "$sock"
  chmod 700 "$data"
  if ! as_pg "$pgbin/initdb" -D "$data" -U postgres -A trust --no-sync \
      -E UTF8 --locale=C.UTF-8 >"$dir/initdb.log" 2>&1; then
    cat "$dir/initdb.log" >&2
    die "initdb failed in $data"
  fi
}

do_start() {
  ensure_user
  check_reachable
  mkdir -p "$dir"
  chown "$pguser:" "$dir"
  do_init
  if ! running; then
    local opts="-c listen_addresses='' -k $sock -c fsync=off"
    opts+=" -c synchronous_commit=off -c full_page_writes=off"
    if ! as_pg "$pgbin/pg_ctl" -D "$data" -l "$dir/server.log" -w -t 30 \
        -o "$opts" start >/dev/null; then
      tail -n 20 "$dir/server.log" >&2 || true
      die "the server in $data did not start (log: $dir/server.log)"
    fi
  fi
  local have
  have=$("$pgbin/psql" -X -q -A -t -h "$sock" -U postgres -d postgres \
    -c "SELECT 1 FROM pg_database WHERE datname = 'fedfuse'") ||
    die "cannot query the server at $sock"
  if [ "$have" != 1 ]; then
    "$pgbin/createdb" -h "$sock" -U postgres fedfuse ||
      die "could not create database fedfuse"
  fi
  echo "$conninfo"
}

do_stop() {
  if [ ! -f "$data/PG_VERSION" ]; then
    echo "$prog: no cluster in $dir" >&2
    return 0
  fi
  if running; then
    as_pg "$pgbin/pg_ctl" -D "$data" -m fast -w -t 30 stop >/dev/null ||
      die "the server in $data did not stop"
  fi
}

case $cmd in
  start) do_start ;;
  stop) do_stop ;;
  status) { [ -f "$data/PG_VERSION" ] && running; } || exit 1 ;;
  conninfo)
    [ -f "$data/PG_VERSION" ] || die "no cluster in $dir (run: $prog start $2)"
    echo "$conninfo"
    ;;
esac
