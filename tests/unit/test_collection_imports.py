"""Every pytest worker imports every test module to collect the suite: the modules the tests import
for their types and readers stay free of the heavy libraries that only running a fit, a plot or a
service needs (each costs every worker tenths of a CPU second and tens of MB)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

LIGHT_MODULES = [
    "obsy_imaging.transits.report",  # reading and checking reports: no fitting
    "obsy_imaging.transiter",  # its types and CSV: no plotting, no MCMC
    "obsy_web.auth.accounts",  # no password hashed at import
    "tests.support.web_server",  # the web service is imported when a test starts it
    # scipy's KD-tree and image interpolation are imported where they are used (scipy.spatial pulls
    # scipy.linalg: ~0.4 CPU s), so the calibration, stacking and registration packages stay light
    "obsy_imaging.calibration",
    "obsy_imaging.stacking",
    "obsy_imaging.transits.reduce",
    "obsy_clouddetect.transmission.analyser",
    "tests.support.e2e_dashboard",  # Playwright is imported when a browser starts
]
HEAVY = [
    "emcee",
    "batman",
    "matplotlib",
    "scipy.stats",
    "scipy.spatial",
    "scipy.linalg",
    "scipy.ndimage",
    "playwright.sync_api",
    "fastapi",
    "obsy_web.service",
    "boto3",
    "moto",
]


@pytest.mark.slow  # a fresh interpreter importing the service modules: about 3 s
def test_the_modules_tests_import_at_collection_do_not_load_the_heavy_libraries() -> None:
    probe = (
        "import importlib, json, sys\n"
        f"for name in {LIGHT_MODULES!r}:\n"
        "    importlib.import_module(name)\n"
        "from obsy_web.auth import accounts\n"
        "from tests.support.e2e_dashboard import browser_available\n"
        "from tests.support.lazy_import import importorskip_lazily\n"
        "browser_available(); importorskip_lazily('playwright.sync_api')\n"
        f"print(json.dumps({{'loaded': [m for m in {HEAVY!r} if m in sys.modules],"
        " 'hashes': accounts._dummy_hash.cache_info().currsize}))\n"
    )
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120, check=True)
    found = json.loads(result.stdout.strip().splitlines()[-1])
    assert found == {"loaded": [], "hashes": 0}, found
