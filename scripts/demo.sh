#!/usr/bin/env bash
# Sets up what is missing, builds in release mode and runs the demo on the embedded broker.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh
swift build -c release --product undercurrent
exec .build/release/undercurrent demo "$@"
