#!/usr/bin/env bash
# Sets up what is missing and runs every test (unit, property and integration tests on the embedded broker).
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh
swift build --build-tests
swift test --skip-build "$@"
