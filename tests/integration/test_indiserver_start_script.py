"""The indiserver image's start script (deploy/indiserver/start-indiserver.sh), run here as the
image runs it: the sky simulator's drivers render the site of the mounted OBSY configuration,
and a configuration that cannot be read leaves them on their default site, indiserver running."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from obsy.indi import IndiClient
from tests.support.indiserver import PROCESS_NAME, find_executable, require_indi
from tests.support.ports import free_port, wait_for_port

pytestmark = pytest.mark.integration
REPO = Path(__file__).resolve().parents[2]
START = REPO / "deploy" / "indiserver" / "start-indiserver.sh"
VENV_BIN = Path(sys.executable).parent
ALLSKY, CAMERA = "SkySim Allsky", "SkySim Camera"


@contextmanager
def started(tmp_path: Path, obsy_yaml: str) -> Iterator[tuple[int, Path]]:
    """The start script with both simulator cameras, OBSY's config in ``tmp_path``; (port, its output)."""
    require_indi()
    if not (VENV_BIN / "indi_obsy_allsky").exists():
        pytest.skip("the sky simulator is not installed (pip install -e services/skysim)")
    home = tmp_path / "home"
    home.mkdir()
    (tmp_path / "obsy.yaml").write_text(obsy_yaml)
    server = tmp_path / PROCESS_NAME  # not "indiserver": KStars' pkill on exit must not stop it
    server.symlink_to(find_executable("indiserver"))
    port = free_port()
    env = {
        key: value for key, value in os.environ.items() if not key.startswith("OBSY_") and not key.startswith("INDI")
    }
    env.update(
        PATH=os.pathsep.join([str(VENV_BIN), env.get("PATH", os.defpath)]),
        HOME=str(home),
        OBSY_CONFIG=str(tmp_path / "obsy.yaml"),
        INDISERVER=str(server),
        INDI_DRIVERS="indi_obsy_allsky indi_obsy_camera",
        INDI_SERVER_ARGS=f"-p {port} -u {tmp_path / 'indi.sock'}",  # the later -p wins
    )
    output = tmp_path / "start.out"
    with output.open("wb") as out:
        process = subprocess.Popen([str(START)], env=env, stdout=out, stderr=subprocess.STDOUT)
    try:
        wait_for_port(port, timeout=20)
        yield port, output
    finally:
        process.terminate()
        process.wait(10)


def site_of(port: int, device: str) -> tuple[float, float, float]:
    with IndiClient("127.0.0.1", port, timeout=20) as indi:
        values = indi.wait_property(device, "SIM_SITE").values
        return values["LAT"], values["LONG"], values["ELEV"]


def test_the_simulators_render_the_site_of_the_mounted_configuration(tmp_path: Path) -> None:
    config = "site: {latitude: -31.2733, longitude: 149.0617, elevation: 1165}\n"
    with started(tmp_path, config) as (port, _):
        for device in (ALLSKY, CAMERA):
            assert site_of(port, device) == pytest.approx((-31.2733, 149.0617, 1165), abs=1e-6), device
    written = (tmp_path / "home" / "skysim.yaml").read_text()
    assert "-31.2733" in written and "149.0617" in written


def test_a_configuration_that_cannot_be_read_is_named_and_indiserver_runs_on(tmp_path: Path) -> None:
    from obsy_skysim.config import SiteSettings

    with started(tmp_path, "site: {latitude: 48, longitude: 16}\nbroker:\n  prot: 1\n") as (port, output):
        default = SiteSettings()
        assert site_of(port, ALLSKY) == pytest.approx((default.latitude, default.longitude, default.elevation))
        text = output.read_text(errors="replace")
        assert "unknown key 'broker.prot'" in text
        assert "the sky simulator renders its default site" in text
    assert not (tmp_path / "home" / "skysim.yaml").exists()
