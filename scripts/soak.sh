#!/usr/bin/env bash
# The long version of the reliability tests: the chaos test with many more SIGKILLs, the property fuzzer
# for longer, and libFuzzer (with AddressSanitizer) on the event decoder and the archive-line parser.
# Usage: scripts/soak.sh [--rounds N] [--fuzz-seconds S]     (defaults: 200 kills, 600 s of fuzzing)
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=200; fuzz=600
while [ $# -gt 0 ]; do
  case "$1" in
    --rounds) rounds="$2"; shift 2;;
    --fuzz-seconds) fuzz="$2"; shift 2;;
    *) echo "usage: scripts/soak.sh [--rounds N] [--fuzz-seconds S]" >&2; exit 2;;
  esac
done
./scripts/setup.sh
swift build --build-tests
echo "== chaos: $rounds consumer kills"
UNDERCURRENT_CHAOS_ROUNDS=$rounds swift test --skip-build --filter ChaosTests
echo "== property fuzzer: $fuzz s"
UNDERCURRENT_FUZZ_SECONDS=$fuzz swift test --skip-build --filter DecoderFuzzTests
echo "== libFuzzer + ASan on the decoder: $fuzz s"
mkdir -p .build/fuzz/corpus
swiftc -O -sanitize=fuzzer,address -parse-as-library -module-name Events Sources/Events/*.swift Fuzz/DecoderFuzzer.swift \
  -o .build/fuzz/decoder 2>/dev/null
.build/debug/undercurrent simulate --customers 20 --months 3 --out .build/fuzz/seed.ndjson >/dev/null 2>&1
python3 - <<'PY'
import json
for i, line in enumerate(open(".build/fuzz/seed.ndjson")):
    if i >= 200: break
    open(f".build/fuzz/corpus/seed{i}", "w").write(json.loads(line)["value"])
PY
.build/fuzz/decoder -max_total_time="$fuzz" -max_len=8192 -print_final_stats=1 .build/fuzz/corpus 2>&1 | tail -n 12
echo "soak: passed"
