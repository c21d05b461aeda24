#!/usr/bin/env bash
# Counts the instructions an event costs inside decode, validation and the marts (`MartState.prepare`, `warm`
# and `commit`), under callgrind, on `undercurrent-bench ingest 1000 1` (1,000 customers of the payment-incident
# scenario over two years). Instructions do not drift with this machine's load, so two builds compare exactly.
#
# Usage: scripts/ingest-instructions.sh [BENCH_BINARY]   (default .build/release/undercurrent-bench)
# BENCH_BATCH (default 32) sets the prepared-batch size, as for the benchmark.
set -euo pipefail
cd "$(dirname "$0")/.."
bin=${1:-.build/release/undercurrent-bench}
command -v valgrind >/dev/null || { echo "ingest-instructions: valgrind is not installed" >&2; exit 2; }
[ -x "$bin" ] || { echo "ingest-instructions: $bin is not an executable" >&2; exit 2; }
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
strip -g -o "$work/bench" "$bin"  # valgrind 3.19 cannot read Swift's DWARF 5 debug info
BENCH_BATCH=${BENCH_BATCH:-32} valgrind --tool=callgrind --callgrind-out-file="$work/out" \
  --toggle-collect='$s5Marts9MartStateV7prepare*' --toggle-collect='$s5Marts9MartStateV4warm*' \
  --toggle-collect='$s5Marts9MartStateV6commit*' "$work/bench" ingest 1000 1 >"$work/stdout" 2>/dev/null
events=$(sed -nE 's/^ingest: ([0-9]+) events.*/\1/p' "$work/stdout")
total=$(callgrind_annotate "$work/out" 2>/dev/null | sed -nE 's/^ *([0-9,]+) .*PROGRAM TOTALS.*/\1/p' | tr -d ,)
[ -n "$events" ] && [ -n "$total" ] || { echo "ingest-instructions: no count (does $bin print 'ingest: N events'?)" >&2; exit 1; }
echo "$total instructions for $events events: $((total / events)) per event"
