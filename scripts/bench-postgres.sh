#!/usr/bin/env bash
# The PostgreSQL sink against a real server on this machine (a private cluster, fsync on, as in production):
#  1. undercurrent-bench postgres: the first full load of CUSTOMERS customers, checkpoints with 1% and 10% of them
#     changed (checkpoint to visible), and a row-by-row INSERT ... ON CONFLICT baseline on the same rows;
#  2. marts-consumer --from-archive with and without --postgres on a simulated history (5 runs each, alternated, medians).
# Usage: scripts/bench-postgres.sh [CUSTOMERS] [ARCHIVE_CUSTOMERS]   (default 1000000 and 5000)
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh
ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null; }
customers=${1:-1000000}; archive_customers=${2:-5000}
swift build -c release >/dev/null
bin=$PWD/.build/release
pgbin=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n1)
work=$(mktemp -d); chmod 755 "$work"
as_pg() { if [ "$(id -u)" -eq 0 ]; then runuser -u postgres -- env -C /tmp "$@"; else "$@"; fi; }
[ "$(id -u)" -eq 0 ] && chown postgres "$work"
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
as_pg "$pgbin/initdb" -D "$work/data" -U postgres --auth=trust -E UTF8 --locale=C >/dev/null
as_pg "$pgbin/pg_ctl" -D "$work/data" -o "-p $port -c listen_addresses=127.0.0.1 -k $work -c shared_buffers=1GB -c max_wal_size=4GB" -l "$work/log" -w start >/dev/null
trap 'as_pg "$pgbin/pg_ctl" -D "$work/data" -m fast -w stop >/dev/null 2>&1 || true; rm -rf "$work"' EXIT
uri="postgresql://postgres@127.0.0.1:$port/postgres"
echo "PostgreSQL $("$pgbin/postgres" --version | awk '{print $3}') on 127.0.0.1:$port (fsync on)"
$bin/undercurrent-bench postgres "$uri" "$customers" 12

$bin/undercurrent simulate --customers "$archive_customers" --months 24 --scenario baseline --seed 42 --out "$work/archive.ndjson" 2>&1 | tail -n1
sync  # the archive written back now, not during the first run's first checkpoint
run() {
  local t0 t1; rm -rf "$work/state"; t0=$(date +%s%N)
  $bin/marts-consumer --state-dir "$work/state" --from-archive "$work/archive.ndjson" --partitions 12 --no-alerts --log-level warning "$@" 2>&1 | tail -n1 >"$work/last"
  t1=$(date +%s%N); awk -v a="$t0" -v b="$t1" 'BEGIN{printf "%.2f\n", (b-a)/1e9}'
}
median() { tr ' ' '\n' | grep . | sort -n | awk '{a[NR]=$1} END{print a[int((NR+1)/2)]}'; }
# The consumer writes into a database of its own: the million rows the first step left are not its to delete.
as_pg "$pgbin/psql" -h "$work" -p "$port" -U postgres -qc "CREATE DATABASE consumer"
curi="postgresql://postgres@127.0.0.1:$port/consumer"
# Without and with the sink alternately, five runs each, so that both see the machine's same phases.
plain_runs=""; with_runs=""
for _ in 1 2 3 4 5; do
  plain_runs="$plain_runs $(run)"
  with_runs="$with_runs $(run --postgres "$curi")"
done
cat "$work/last"
rows=$(as_pg "$pgbin/psql" -h "$work" -p "$port" -U postgres -d consumer -At -c "SELECT count(*) FROM undercurrent.mart_customer_360")
plain=$(echo "$plain_runs" | median); with=$(echo "$with_runs" | median)
echo "consumer --from-archive runs (s): without the sink$plain_runs; with --postgres$with_runs"
awk -v p="$plain" -v w="$with" -v r="$rows" 'BEGIN{printf "consumer --from-archive: %.2f s without the sink, %.2f s with --postgres (%d customer rows) = %.0f%% slower (medians of 5, alternated)\n", p, w, r, (w/p-1)*100}'
