#!/usr/bin/env bash
# Run OBSY's test suite (unit and integration: the tests start their own Mosquitto and
# indiserver on free loopback ports) and the linters. Extra arguments go to pytest.
#
# Tests run in parallel (pytest-xdist): most of the suite waits on real servers (the roof
# simulator's travel, safe delays, process start-up), so more workers than cores pays.
# Every test has its own broker, ports, data dir, indiserver and KStars D-Bus session.
# OBSY_TEST_WORKERS sets how many (default 8; 0 runs in this process, one test at a time). More start more
# real-time tests at once, and on 2 cores the suite is CPU-bound (the machine 89 % busy over a 14.5-minute run,
# 1,550 CPU s): 12 workers gave 13 minutes instead of 14-15 here, and with 10 two real-time tests of the first
# minutes missed their times.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/bootstrap.sh
.venv/bin/ruff check .
.venv/bin/ruff format --check .
if [[ -z "${OBSY_EXOTIC_PYTHON:-}" && -x .venv-exotic/bin/python ]]; then
    export OBSY_EXOTIC_PYTHON="$PWD/.venv-exotic/bin/python"  # see scripts/exotic-env.sh
fi
if [[ -z "${OBSY_HOMEASSISTANT_PYTHON:-}" && -x .venv-homeassistant/bin/python ]]; then
    export OBSY_HOMEASSISTANT_PYTHON="$PWD/.venv-homeassistant/bin/python"  # see scripts/homeassistant-env.sh
fi
# Keep byte-compiled modules (__pycache__, ignored by git) even where the environment says not
# to write them (PYTHONDONTWRITEBYTECODE, as in the service image): otherwise every pytest worker
# compiles and assertion-rewrites every test module again (collecting tests/unit: 11 -> 6 CPU s)
# and every service or command the tests start compiles the project's sources again (~0.3 CPU s).
unset PYTHONDONTWRITEBYTECODE
# Compile the numba kernels once, before the workers start: otherwise every worker's first
# imaging or sky simulator test compiles them at once (seconds to tens of CPU seconds each)
# and starves the others.
.venv/bin/obsy-imaging warm-up
.venv/bin/obsy-skysim warm-up
workers="${OBSY_TEST_WORKERS:-8}"
parallel=()
if [[ "$workers" != 0 ]] && ! printf '%s\n' "$@" | grep -qE '^(-n|--numprocesses)'; then
    # worksteal: an idle worker takes queued tests from a busy one, so a few long tests
    # (KStars, the whole night) do not leave the others idle at the end.
    parallel=(-n "$workers" --dist worksteal)
fi
# OBSY_TEST_CPU_REPORT=<file> records each test's CPU (tests/support/cpu_report.py summarises it).
# The slowest tests are listed at the end: the figures the long() markers and the suite's time
# budget (under 10 minutes here) are tuned from.
exec .venv/bin/pytest "${parallel[@]}" --durations=30 "$@"
