"""The services registry (``obsy.services``): the ``obsy.services`` entry points, their order, their errors,
the one command-line convention, and the local launcher that starts what it lists."""

from __future__ import annotations

import logging
import os
import re
import subprocess
import sys
import textwrap
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest

from obsy.bus import Bus
from obsy.config import SERVICE_NAMES, ObsyConfig, load_config
from obsy.runner import Service, ServiceRunner
from obsy.services import ServiceRegistryError, registered, registered_services
from obsy_local import launcher as launcher_module
from obsy_local.launcher import Launcher

REPO = Path(__file__).resolve().parents[2]

PLUGIN_SERVICE = """
from obsy.runner import Service, run_service


class DomeService(Service):
    name = "{name}"


def main(argv=None):
    return run_service(DomeService, argv)
"""


def install_plugin(
    root: Path,
    *,
    entry: str = "dome = obsy_dome.service:DomeService",
    scripts: str = "obsy-dome = obsy_dome.service:main",
    name: str = "dome",
) -> Path:
    """A service package outside OBSY, 'installed' under ``root`` (a dist-info beside the package)."""
    package = root / "obsy_dome"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "service.py").write_text(textwrap.dedent(PLUGIN_SERVICE.format(name=name)))
    info = root / "obsy_dome-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: obsy-dome\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text(f"[console_scripts]\n{scripts}\n\n[obsy.services]\n{entry}\n")
    return root


@pytest.fixture
def plugin_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """Install a plug-in with the given entry points on ``sys.path`` for this test only."""

    def install(**kwargs: str) -> Path:
        root = install_plugin(tmp_path / "site", **kwargs)
        monkeypatch.syspath_prepend(str(root))
        monkeypatch.delitem(sys.modules, "obsy_dome", raising=False)
        monkeypatch.delitem(sys.modules, "obsy_dome.service", raising=False)
        return root

    yield install
    # The test's imports of the plug-in would outlive it (monkeypatch restores only what was there before),
    # and a later test in this worker would find an 'obsy_dome' that is not installed.
    for module in [name for name in sys.modules if name == "obsy_dome" or name.startswith("obsy_dome.")]:
        del sys.modules[module]


def test_the_catalogue_names_every_installed_service_in_its_order() -> None:
    """Where everything is installed (here), the registry and ``SERVICE_NAMES`` name the same services."""
    names = [service.name for service in registered_services()]
    assert names == list(SERVICE_NAMES), (
        f"entry-point group 'obsy.services' has {names}, the catalogue obsy.config.base.SERVICE_NAMES has "
        f"{list(SERVICE_NAMES)}: each services/<name>/pyproject.toml must declare its entry point and be installed, "
        "and a new OBSY service must be added to SERVICE_NAMES"
    )
    assert len(set(SERVICE_NAMES)) == len(SERVICE_NAMES)


def test_every_registered_service_loads_as_the_service_it_names() -> None:
    for service in registered_services():
        cls = service.load()
        assert issubclass(cls, Service) and cls.name == service.name
        assert service.script == f"obsy-{service.name}"
        assert service.distribution == f"obsy-{service.name}"


@pytest.mark.slow
@pytest.mark.parametrize("service", [s.name for s in registered_services()])
def test_every_service_has_the_console_script_obsy_name_with_the_three_commands(service: str) -> None:
    """The one command-line convention: ``obsy-<name> run | healthcheck | check-config``."""
    script = Path(sys.executable).parent / f"obsy-{service}"
    assert script.exists(), f"no console script {script}"
    result = subprocess.run([str(script), "--help"], capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith(f"usage: obsy-{service} "), result.stdout
    offered = re.search(r"positional arguments:\s*\{([^}]*)\}", result.stdout)
    assert offered, f"obsy-{service} --help lists no commands:\n{result.stdout}"
    assert {"run", "healthcheck", "check-config"} <= set(offered.group(1).split(",")), result.stdout


def test_a_plugin_is_registered_after_obsys_own_and_runs_through_obsy_services(plugin_path) -> None:
    root = plugin_path()
    services = registered_services()
    assert [s.name for s in services] == [*SERVICE_NAMES, "dome"]
    dome = registered("dome")
    assert (dome.distribution, dome.script) == ("obsy-dome", "obsy-dome")
    assert dome.load().__name__ == "DomeService"
    # What the launcher runs: the console script, found through the registry.
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(root), os.environ.get("PYTHONPATH", "")])}
    result = subprocess.run(dome.main_argv("--help"), capture_output=True, text=True, timeout=60, check=False, env=env)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("usage: obsy-dome ")


def test_an_entry_point_that_does_not_import_names_itself_and_the_error(plugin_path) -> None:
    plugin_path(entry="dome = obsy_dome.missing:DomeService")
    dome = registered("dome")
    with pytest.raises(ServiceRegistryError, match=r"'dome' \(obsy_dome.missing:DomeService, from obsy-dome\).*"):
        dome.load()
    with pytest.raises(ServiceRegistryError, match=r"ModuleNotFoundError: No module named 'obsy_dome\.missing'"):
        dome.load()


def test_an_entry_point_that_is_no_service_or_misnames_itself_is_refused(plugin_path) -> None:
    plugin_path(entry="dome = obsy_dome.service:main", name="dome")
    with pytest.raises(ServiceRegistryError, match=r"is not a subclass of obsy\.runner\.Service"):
        registered("dome").load()


def test_a_service_whose_class_has_another_name_is_refused(plugin_path) -> None:
    plugin_path(name="roof")
    with pytest.raises(ServiceRegistryError, match="calls itself 'roof'"):
        registered("dome").load()


def test_a_service_without_its_console_script_is_refused_at_once(plugin_path) -> None:
    plugin_path(scripts="dome-tool = obsy_dome.service:main")
    with pytest.raises(ServiceRegistryError, match="obsy-dome declares no console script 'obsy-dome'"):
        registered_services()


def test_a_service_registered_twice_is_refused(plugin_path) -> None:
    plugin_path(entry="weather = obsy_dome.service:DomeService", scripts="obsy-weather = obsy_dome.service:main")
    twice = r"'weather' is registered twice: by obsy-\w+ \(.*\) and by obsy-\w+ "
    with pytest.raises(ServiceRegistryError, match=twice):
        registered_services()


def test_asking_for_a_service_not_installed_names_those_that_are() -> None:
    with pytest.raises(ServiceRegistryError, match=r"no service 'dome' is installed here \(installed: weather, "):
        registered("dome")
    result = subprocess.run(
        [sys.executable, "-m", "obsy.services", "dome", "run"], capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 2
    assert "no service 'dome' is installed here" in result.stderr


# --- the launcher starts what the registry lists ----------------------------------------


def local_config(tmp_path: Path, **sections: object) -> ObsyConfig:
    return ObsyConfig(site={"latitude": 48.2, "longitude": 16.4}, data_dir=tmp_path / "data", **sections)


def test_the_launcher_starts_every_enabled_installed_service_in_the_registrys_order(tmp_path: Path) -> None:
    launcher = Launcher(local_config(tmp_path, alpaca={"enabled": False}), None)
    assert launcher.services == [name for name in SERVICE_NAMES if name != "alpaca"]
    argv = launcher.service_argv("weather")
    assert argv[:4] == [sys.executable, "-m", "obsy.services", "weather"]
    assert argv[4:] == ["run", "--log-format", "text"]


def test_the_launcher_names_the_services_not_installed_and_starts_the_rest(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    installed = [registered("weather"), registered("mcp")]
    with caplog.at_level(logging.WARNING, logger="obsy_local.launcher"):
        launcher = Launcher(local_config(tmp_path), None, installed=installed)
    assert launcher.services == ["weather", "mcp"]
    absent = ", ".join(name for name in SERVICE_NAMES if name not in ("weather", "mcp"))
    assert f"not installed here, not started: {absent}" in caplog.text


def test_the_launcher_refuses_a_service_that_is_not_installed(capsys: pytest.CaptureFixture[str], tmp_path) -> None:
    config = tmp_path / "obsy.yaml"
    config.write_text(f"site:\n  latitude: 48.2\n  longitude: 16.4\ndata_dir: {tmp_path / 'data'}\n")
    assert launcher_module.main(["--config", str(config), "--only", "weather,dome"]) == 2
    err = capsys.readouterr().err
    assert "obsy-local: not installed here: dome (installed: weather, clouddetect, " in err


def test_the_launcher_reports_a_broken_registry_and_starts_nothing(
    plugin_path, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    plugin_path(scripts="dome-tool = obsy_dome.service:main")
    config = tmp_path / "obsy.yaml"
    config.write_text(f"site:\n  latitude: 48.2\n  longitude: 16.4\ndata_dir: {tmp_path / 'data'}\n")
    assert launcher_module.main(["--config", str(config)]) == 2
    assert "declares no console script 'obsy-dome'" in capsys.readouterr().err
    assert not (tmp_path / "data").exists()


# --- one clock ------------------------------------------------------------------------------


def test_the_runner_hands_every_service_the_clock_it_is_given() -> None:
    """``Service.clock``: the wall clock by default, the one injected where a test hands its own."""
    config = load_config(REPO / "config" / "obsy.example.yaml", env={})
    fixed = datetime(2026, 11, 21, 22, 30, tzinfo=UTC)
    for entry in registered_services():
        cls = entry.load()
        runner = ServiceRunner(cls, config, bus=Bus(config.broker, cls.name), clock=lambda: fixed)
        assert runner.service.clock() == fixed, f"{cls.name} does not take the runner's clock"
        default = cls(config, Bus(config.broker, cls.name)).clock()
        assert default.tzinfo is not None and abs((default - datetime.now(UTC)).total_seconds()) < 60


def test_the_mcp_keeps_its_monotonic_step_clock_beside_the_wall_clock() -> None:
    config = load_config(REPO / "config" / "obsy.example.yaml", env={})
    fixed = datetime(2026, 11, 21, 22, 30, tzinfo=UTC)
    mcp = registered("mcp").load()(config, Bus(config.broker, "mcp"), clock=lambda: fixed)
    assert mcp.clock() == fixed
    assert mcp.controller.clock is time.monotonic
