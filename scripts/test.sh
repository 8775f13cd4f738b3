#!/usr/bin/env bash
# Run OBSY's test suite (unit and integration: the tests start their own Mosquitto and
# indiserver on free loopback ports) and the linters. Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/bootstrap.sh
.venv/bin/ruff check .
.venv/bin/ruff format --check .
exec .venv/bin/pytest "$@"
