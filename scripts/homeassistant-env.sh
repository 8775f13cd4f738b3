#!/usr/bin/env bash
# Home Assistant in its own virtual environment, .venv-homeassistant: the tests in
# tests/integration/test_homeassistant_real.py start it headless against their own Mosquitto
# and check OBSY's discovery in it. It pins its own aiohttp, pydantic and paho-mqtt, so it
# cannot share .venv. scripts/test.sh uses it when it exists.
#
# 2024.3 is the last Home Assistant release for Python 3.11 (2024.4 needs 3.12). It is
# installed with the constraints file its wheel carries (homeassistant/package_constraints.txt,
# as Home Assistant's own installs do): without it pip backtracks through source builds of
# the Bluetooth libraries for many minutes. The tests start it with --skip-pip, so what the
# integrations they load need is installed here: paho-mqtt for MQTT and Pillow for
# image_upload (onboarding -> person), at the versions the constraints pin.
set -euo pipefail
cd "$(dirname "$0")/.."
version="2024.3.3"
if .venv-homeassistant/bin/python -c "import importlib.metadata as m, sys; sys.exit(m.version('homeassistant') != '$version')" 2>/dev/null; then
    echo "Home Assistant $version is ready in .venv-homeassistant"
    exit 0
fi
rm -rf .venv-homeassistant
python3 -m venv .venv-homeassistant
pip=(.venv-homeassistant/bin/pip --disable-pip-version-check -q)
wheels=$(mktemp -d)
trap 'rm -rf "$wheels"' EXIT
"${pip[@]}" download --no-deps -d "$wheels" "homeassistant==$version"
.venv-homeassistant/bin/python - "$wheels" <<'PY'
import pathlib, sys, zipfile
folder = pathlib.Path(sys.argv[1])
[wheel] = folder.glob("homeassistant-*.whl")
(folder / "constraints.txt").write_bytes(zipfile.ZipFile(wheel).read("homeassistant/package_constraints.txt"))
PY
"${pip[@]}" install -c "$wheels/constraints.txt" "$wheels"/homeassistant-*.whl paho-mqtt Pillow
echo "Home Assistant $version installed in .venv-homeassistant"
