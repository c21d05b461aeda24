#!/usr/bin/env bash
# Produce/consume throughput of 250-byte messages through the embedded broker: the Swift Kafka layer vs.
# a plain C program on librdkafka, alternating runs in one invocation. Usage: scripts/bench-kafka.sh [MESSAGES] [ROUNDS]
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh
n=${1:-1000000}; rounds=${2:-3}
# Linked with jemalloc like the Swift executables, so that both sides allocate alike.
gcc -O2 -o .build/raw_kafka_bench Benchmarks/raw_kafka_bench.c -Wl,--no-as-needed -ljemalloc -Wl,--as-needed -lrdkafka
swift build -c release --product undercurrent-bench >/dev/null
out=$(mktemp)
for i in $(seq "$rounds"); do
  .build/raw_kafka_bench "$n" 6 | tee -a "$out"
  .build/release/undercurrent-bench kafka "$n" 6 2>/dev/null | tee -a "$out"
done
median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
for what in produce consume; do
  raw=$(grep "raw-librdkafka $what" "$out" | sed -E 's/.*= ([0-9]+) msg.*/\1/' | median)
  sw=$(grep "swift-layer $what" "$out" | sed -E 's/.*= ([0-9]+) msg.*/\1/' | median)
  echo "median $what: raw $raw msg/s, swift $sw msg/s, ratio $(awk -v a="$sw" -v b="$raw" 'BEGIN{printf "%.2f", a/b}')"
done
rm -f "$out"
