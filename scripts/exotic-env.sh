#!/usr/bin/env bash
# EXOTIC (NASA Exoplanet Watch's reduction code) in its own virtual environment, .venv-exotic:
# the transit tests cross-check OBSY's mid-time fit with it. EXOTIC 4.3 pins an older numpy
# and astropy than OBSY's, so it cannot share .venv. scripts/test.sh uses it when it exists.
set -euo pipefail
cd "$(dirname "$0")/.."
version="4.3.1"
if .venv-exotic/bin/python -c "import importlib.metadata as m, sys; sys.exit(m.version('exotic') != '$version')" 2>/dev/null; then
    echo "EXOTIC $version is ready in .venv-exotic"
    exit 0
fi
rm -rf .venv-exotic
python3 -m venv .venv-exotic
.venv-exotic/bin/pip install -q --disable-pip-version-check "exotic==$version"
echo "EXOTIC $version installed in .venv-exotic"
