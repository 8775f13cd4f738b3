#!/usr/bin/env bash
# Home Assistant in its own virtual environment, .venv-homeassistant: the tests in
# tests/integration/homeassistant/test_homeassistant_real.py start it headless against their own Mosquitto
# and check OBSY's discovery in it. It pins its own aiohttp, pydantic and paho-mqtt, so it
# cannot share .venv. scripts/test.sh uses it when it exists.
#
# 2024.3 is the last Home Assistant release for Python 3.11 (2024.4 needs 3.12). It is
# installed with the constraints file its wheel carries (homeassistant/package_constraints.txt,
# as Home Assistant's own installs do): without it pip backtracks through source builds of
# the Bluetooth libraries for many minutes. The tests start it with --skip-pip (no network
# while testing), so the requirements of the integrations it loads (those it always loads,
# and api, config, onboarding and mqtt, with what they depend on: read from their manifests)
# are installed here, at the versions the manifests pin.
set -euo pipefail
cd "$(dirname "$0")/.."
version="2024.3.3"
ready=.venv-homeassistant/obsy-ready  # written last: Home Assistant and its integrations' requirements are in
if [[ "$(cat "$ready" 2>/dev/null)" == "$version" ]]; then
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
# josepy 2 dropped what the acme that hass-nabucasa pulls in imports (every HTTP request imports it).
"${pip[@]}" install -c "$wheels/constraints.txt" "$wheels"/homeassistant-*.whl "josepy<2"
# The integrations the tests load besides those Home Assistant always loads: api config onboarding mqtt.
.venv-homeassistant/bin/python - api config onboarding mqtt >"$wheels/integrations.txt" <<'PY'
import json, pathlib, sys
import homeassistant
from homeassistant import bootstrap
components = pathlib.Path(homeassistant.__file__).parent / "components"
todo = bootstrap.CORE_INTEGRATIONS | bootstrap.DEFAULT_INTEGRATIONS | bootstrap.LOGGING_INTEGRATIONS | set(sys.argv[1:])
todo.discard("sentry")  # set up only when configured
seen, requirements = set(), set()
while todo:
    name = todo.pop()
    if name not in seen:
        seen.add(name)
        manifest = json.loads((components / name / "manifest.json").read_text())
        requirements.update(manifest.get("requirements", []))
        # after_dependencies too: some import them at once (analytics imports recorder's SQLAlchemy).
        todo.update(manifest.get("dependencies", []) + manifest.get("after_dependencies", []))
print("\n".join(sorted(requirements)))
PY
"${pip[@]}" install -c "$wheels/constraints.txt" -r "$wheels/integrations.txt"
echo "$version" >"$ready"
echo "Home Assistant $version installed in .venv-homeassistant"
