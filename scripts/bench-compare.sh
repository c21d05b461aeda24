#!/usr/bin/env bash
# Undercurrent against what a team would otherwise use, on the same events in one run:
#  (a) a Python consumer with confluent-kafka updating the same marts (two of them) from the same topics;
#  (b) the batch pipeline of the seed documents: DuckDB recomputing those two marts over the archive, and DuckDB
#      recomputing all ten marts (the same as Undercurrent's, risk columns included: duckdb_marts.py).
# Also Undercurrent's consumer from Kafka and from the archive (all ten marts). Checks that all agree: the two-mart
# numbers across all four, and the ten marts' CSV files byte for byte between DuckDB and both of Undercurrent's runs.
# Usage: [ROUNDS=3] scripts/bench-compare.sh [CUSTOMERS] [MONTHS]  (default 5000 customers, 24 months: about 880k events)   (needs: pip install confluent-kafka duckdb)
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh
python3 -c "import confluent_kafka, duckdb" 2>/dev/null || pip install -q confluent-kafka duckdb
customers=${1:-5000}; months=${2:-24}
swift build -c release >/dev/null
bin=.build/release
work=$(mktemp -d); trap 'kill $broker 2>/dev/null || true; rm -rf "$work"' EXIT
export UNDERCURRENT_BROKER_FILE=$work/broker
# Many partitions: the embedded broker keeps only 5 MiB per partition.
$bin/undercurrent broker --partitions 64 >"$work/broker.log" 2>&1 & broker=$!
for _ in $(seq 50); do [ -s "$work/broker" ] && break; sleep 0.1; done
sim=(--customers "$customers" --months "$months" --scenario baseline --seed 42)
for p in billing payments engagement; do $bin/$p-producer "${sim[@]}" 2>&1 | tail -n1; done
$bin/undercurrent simulate "${sim[@]}" --out "$work/archive.ndjson" 2>&1 | tail -n1
# The archive's 305 MB are still being written back: on ext4 the replay's first checkpoint fsync would wait for
# them (the journal commits them with it), a cost of writing the archive, not of reading it.
sync
events=$(wc -l <"$work/archive.ndjson")
secs() { awk -v a="$1" -v b="$2" 'BEGIN{printf "%.2f", (b-a)/1e9}'; }

t0=$(date +%s%N)
line=$($bin/marts-consumer --state-dir "$work/kafka-state" --exit-when-idle 1 --no-alerts -X fetch.wait.max.ms=10 --log-level warning 2>&1 | tail -n1)
echo "$line"
case "$line" in *"accepted $events,"*) ;; *) echo "error: the consumer did not see all $events events (broker retention?)" >&2; exit 1;; esac
t1=$(date +%s%N); ours_kafka=$(awk -v s="$(secs "$t0" "$t1")" 'BEGIN{print s-1}')   # minus the 1 s idle wait
python3 Benchmarks/compare/python_consumer.py "$(cat "$work/broker")" "$events" "$work/python.json" 2>"$work/py.log"; cat "$work/py.log"
# The broker is not needed any more: the archive replay and DuckDB run without it beside them.
kill "$broker" 2>/dev/null || true; wait "$broker" 2>/dev/null || true
# The archive replay and the two DuckDB recomputes, alternated for ROUNDS rounds (default 3) on this noisy 2-core
# machine; the medians are compared. Each is timed as a process (start, config or import, writing the result): for
# DuckDB its own time (load and queries, as its script reports it) is printed too.
rounds=${ROUNDS:-3}
median() { sort -n | awk '{v[NR]=$1} END{print (NR%2 ? v[(NR+1)/2] : (v[NR/2]+v[NR/2+1])/2)}'; }
timed() { local out=$1 t0; shift; t0=$(date +%s%N); "$@"; echo "$(secs "$t0" "$(date +%s%N)")" >>"$out"; }
replay() {
  $bin/marts-consumer --state-dir "$work/archive-state" --from-archive "$work/archive.ndjson" --no-alerts --log-level warning 2>&1 | tail -n1
}
recompute() {  # recompute SCRIPT OUT NAME: DuckDB's script; its own time goes to i-NAME
  python3 "Benchmarks/compare/$1" "$work/archive.ndjson" "$work/$2" 2>"$work/$3.log"; cat "$work/$3.log"
  sed -E 's/.* in ([0-9.]+) s.*/\1/' "$work/$3.log" >>"$work/i-$3"
}
: >"$work/t-archive"; : >"$work/t-duck"; : >"$work/t-duck10"; : >"$work/i-duck"; : >"$work/i-duck10"
for _ in $(seq "$rounds"); do
  rm -rf "$work/archive-state"
  timed "$work/t-archive" replay
  timed "$work/t-duck" recompute duckdb_batch.py duckdb.json duck
  timed "$work/t-duck10" recompute duckdb_marts.py duckdb-marts duck10
done
ours_archive=$(median <"$work/t-archive"); duck_wall=$(median <"$work/t-duck"); duck10_wall=$(median <"$work/t-duck10")
duck_s=$(median <"$work/i-duck"); duck10_s=$(median <"$work/i-duck10")
each() { paste -sd' ' "$1" | sed 's/ /, /g'; }
echo "archive replay, process wall (s):         $(each "$work/t-archive")"
echo "duckdb, 2 marts, process wall (s):        $(each "$work/t-duck")"
echo "duckdb, 10 marts, process wall (s):       $(each "$work/t-duck10")"
$bin/undercurrent marts export --state-dir "$work/kafka-state" --out "$work/export" >/dev/null
python3 Benchmarks/compare/compare_marts.py "$work/export" "$work/python.json" "$work/duckdb.json"
$bin/undercurrent marts export --state-dir "$work/archive-state" --out "$work/archive-export" >/dev/null
for d in "$work/export" "$work/archive-export"; do
  diff -r -x manifest.json "$d" "$work/duckdb-marts" >&2 || { echo "error: $d differs from DuckDB's ten marts" >&2; exit 1; }
done
echo "all ten marts: DuckDB's recompute equals both exports (from Kafka, from the archive), file for file"

py=$(sed -E 's/.*= ([0-9]+) msg.*/\1/' "$work/py.log")
awk -v n="$events" -v k="$ours_kafka" -v a="$ours_archive" -v py="$py" -v d="$duck_s" -v dw="$duck_wall" -v d10="$duck10_s" -v dw10="$duck10_wall" 'BEGIN{
  printf "events: %d\n", n
  printf "undercurrent, from Kafka (10 marts):     %8.0f events/s (%.2f s, incl. group join)\n", n/k, k
  printf "python confluent-kafka (2 marts):        %8.0f events/s  -> undercurrent is %.1fx\n", py, (n/k)/py
  printf "medians of the rounds:\n"
  printf "undercurrent, from the archive (10 marts): %6.0f events/s (%.2f s, the process wall)\n", n/a, a
  printf "duckdb batch recompute (2 marts):        %8.0f events/s (%.2f s inside; %.2f s the process wall) -> undercurrent is %.2fx (wall to wall; %.2fx to the inside)\n", n/d, d, dw, dw/a, d/a
  printf "duckdb batch recompute (all 10 marts):   %8.0f events/s (%.2f s inside; %.2f s the process wall) -> undercurrent is %.2fx (wall to wall; %.2fx to the inside)\n", n/d10, d10, dw10, dw10/a, d10/a
}'
