"""The small commands of a service start without its runtime.

``healthcheck`` (the container's, every 30 s), ``--help`` and commands such as ``obsy-mcp decision``,
``obsy-web create-user``, ``obsy-imaging post-capture`` or ``obsy-allsky timelapse`` go through a
service's console script (``obsy_<name>.main``), which names the service and its commands instead
of importing them (``obsy.runner.run_service``). One import at the top of such a module (``from
obsy import astro``, the service's module) costs every one of those starts a second or two of CPU
again; this test says which one did. The modules are imported in a fresh interpreter, as a start does.
"""

from __future__ import annotations

import json
import subprocess
import sys

#: What each service's light start imports: its console script's module and its small commands.
LIGHT_MODULES = {
    "mcp": ["obsy_mcp.main", "obsy_mcp.decision_cli", "obsy_mcp.command_cli"],
    "web": ["obsy_web.main", "obsy_web.cli"],
    "imaging": ["obsy_imaging.main", "obsy_imaging.ingest.postcapture"],
    "allsky": ["obsy_allsky.main", "obsy_allsky.cli"],
    "scheduler": ["obsy_scheduler.main"],
    "clouddetect": ["obsy_clouddetect.main"],
}
#: What none of them needs: the services' runtimes and the heavy libraries only they load.
HEAVY = [
    "obsy_mcp.service",
    "obsy_mcp.controller",
    "obsy_web.service",
    "obsy_web.app",
    "obsy_imaging.service",
    "obsy_imaging.calibrator",
    "obsy_allsky.service",
    "obsy_scheduler.service",
    "obsy_clouddetect.service",
    "obsy.astro",
    "astropy.coordinates",
    "fastapi",
    "numba",
    "scipy",
    "matplotlib",
]

PROBE = """
import importlib, json, sys
modules, heavy = json.loads(sys.argv[1]), json.loads(sys.argv[2])
for name in modules:
    importlib.import_module(name)
print(json.dumps(sorted(h for h in heavy if h in sys.modules)))
"""


def test_the_light_commands_do_not_import_the_runtime() -> None:
    modules = [name for names in LIGHT_MODULES.values() for name in names]
    done = subprocess.run(
        [sys.executable, "-c", PROBE, json.dumps(modules), json.dumps(HEAVY)],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    loaded = json.loads(done.stdout)
    assert loaded == [], f"importing {modules} loaded {loaded}: make those imports lazy (inside the command)"
