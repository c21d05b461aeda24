#!/usr/bin/env bash
# Compares two builds of undercurrent-bench on one benchmark. This shared 2-core machine drifts by ±20% (at
# times more) within minutes, so runs of one build at different times do not compare: the builds are run
# alternately, ROUNDS pairs, and then counted in instructions under cachegrind, which do not drift.
#
# Usage: scripts/bench-ab.sh OLD_BINARY NEW_BINARY ROUNDS BENCH-ARGS...
#   e.g. IR_ARGS="sim 2000" scripts/bench-ab.sh /tmp/bench-before .build/release/undercurrent-bench 3 sim 20000
# OLD_BINARY: build the older commit (`swift build -c release --product undercurrent-bench`) and copy
# .build/release/undercurrent-bench aside. IR_ARGS: the (smaller) benchmark counted under cachegrind, which
# runs about 50 times slower (default: BENCH-ARGS); IR_ARGS=none skips the count.
# PARALLEL=1 runs each pair at the same time, one build on each core (swapping cores every round), so that
# both see the same phase of the machine: for one-thread benchmarks (sim, marts, ingest) only.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ $# -lt 4 ]; then sed -n '2,10p' "$0" | sed 's/^# \{0,1\}//'; exit 2; fi
old=$1 new=$2 rounds=$3
shift 3
for b in "$old" "$new"; do [ -x "$b" ] || { echo "bench-ab: $b is not an executable" >&2; exit 2; }; done
summary() { grep -E 'events/s|msg/s|CPU time' | tr '\n' ' '; }
for i in $(seq "$rounds"); do
  if [ "${PARALLEL:-0}" = 1 ]; then
    a=$(mktemp) b=$(mktemp)
    taskset -c $((i % 2)) "$old" "$@" >"$a" 2>/dev/null &
    taskset -c $(((i + 1) % 2)) "$new" "$@" >"$b" 2>/dev/null
    wait
    echo "$old: $(summary <"$a")"
    echo "$new: $(summary <"$b")"
    rm -f "$a" "$b"
  else
    for b in "$old" "$new"; do
      echo "$b: $("$b" "$@" 2>/dev/null | summary)"
    done
  fi
done
ir_args=${IR_ARGS:-$*}
if [ "$ir_args" != none ] && command -v valgrind >/dev/null; then
  for b in "$old" "$new"; do
    stripped=$(mktemp)
    strip -g -o "$stripped" "$b"  # valgrind 3.19 cannot read Swift's DWARF 5 debug info
    # shellcheck disable=SC2086
    refs=$(valgrind --tool=cachegrind --cache-sim=no --cachegrind-out-file=/dev/null "$stripped" $ir_args 2>&1 \
      | sed -nE 's/.*I +refs: +([0-9,]+).*/\1/p' | tr -d ,)
    rm -f "$stripped"
    echo "$b: $refs instructions for '$ir_args'"
  done
fi
