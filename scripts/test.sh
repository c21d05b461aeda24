#!/usr/bin/env bash
# Sets up what is missing and runs every test (unit, property and integration tests on the embedded broker).
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh
# The dashboard's browser test drives headless Chromium (Debian's chromium).
if ! command -v chromium >/dev/null 2>&1 && ! command -v chromium-browser >/dev/null 2>&1; then
  echo "installing: chromium (for the dashboard's browser test)" >&2
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq chromium >/dev/null
fi
# The PostgreSQL sink's tests start private clusters of Debian's PostgreSQL server (initdb, pg_ctl).
if ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then
  echo "installing: postgresql (for the PostgreSQL sink's tests)" >&2
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq postgresql >/dev/null
fi
# Prometheus' promtool and server check the metrics, the rules and the dashboard's queries (Debian's prometheus).
if ! command -v promtool >/dev/null 2>&1 || [ ! -x /usr/bin/prometheus ]; then
  echo "installing: prometheus (promtool and the server, for the metrics tests)" >&2
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends prometheus >/dev/null
fi
# dbt-postgres for the dbt project's test, in a virtual environment of its own.
if [ ! -x .build/venv/bin/dbt ]; then
  echo "installing: dbt-postgres into .build/venv (for the dbt project's test)" >&2
  python3 -m venv .build/venv
  .build/venv/bin/pip install -q "dbt-core~=1.9.0" "dbt-postgres~=1.9.0"  # 2.x fetches a parser from GitHub at install
fi
# DuckDB in the same environment, for the test that holds the marts to a batch recompute in another engine.
if ! .build/venv/bin/python -c "import duckdb" 2>/dev/null; then
  echo "installing: duckdb into .build/venv (for the batch recompute of the marts)" >&2
  .build/venv/bin/pip install -q "duckdb~=2.0.1"
fi
# The compose-spec JSON schema, for validating docker-compose.yml (no Docker engine needed): the copy in the
# docker-compose 1.29.2 wheel on PyPI.
if [ ! -f .build/compose-spec/compose_spec.json ]; then
  echo "fetching: the compose-spec schema (docker-compose 1.29.2 wheel, PyPI)" >&2
  mkdir -p .build/compose-spec
  .build/venv/bin/pip download -q --no-deps --dest .build/compose-spec "docker-compose==1.29.2"
  .build/venv/bin/python -c 'import glob, zipfile; zipfile.ZipFile(glob.glob(".build/compose-spec/*.whl")[0]).extract("compose/config/compose_spec.json", ".build/compose-spec")'
  mv .build/compose-spec/compose/config/compose_spec.json .build/compose-spec/compose_spec.json
fi
# An optimized build of the code and the tests: it takes about 100 s more to build than a debug build (450 s
# against 351 s on a clean clone), and the tests (many of which run the package's executables) then take about
# half as long (468 s against 864 s). In a scratch directory of its
# own, so that the demo's and the benchmarks' release build (without testability) is not rebuilt each time.
# `swift build --build-tests` then `swift test --skip-build --filter NAME` still runs tests against a debug build.
build=(-c release -Xswiftc -enable-testing --scratch-path .build-tests)
swift build --build-tests "${build[@]}"
swift test --skip-build "${build[@]}" "$@"
