"""Services own their config section's schema: registered by entry point, validated with the core's messages."""

from __future__ import annotations

import ast
import json
import os
import pickle
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from pydantic import ValidationError, create_model

import obsy.config
from obsy.config import (
    SERVICE_NAMES,
    SERVICE_OWNED_SECTIONS,
    ConfigError,
    CoreConfig,
    ObsyConfig,
    SchedulerTransitsConfig,
    Section,
    load_config,
)
from obsy.config.registry import MissingSection, installed_section_schemas, missing_section_field

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "config" / "obsy.example.yaml"
MINIMAL = "site:\n  latitude: 48.2\n  longitude: 16.4\n"


def problems(tmp_path: Path, text: str, env: dict[str, str] | None = None) -> list[str]:
    path = tmp_path / "obsy.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError) as caught:
        load_config(path, env=env or {})
    return caught.value.problems


def test_each_service_owned_section_is_registered_by_its_package():
    schemas = installed_section_schemas()
    assert set(SERVICE_OWNED_SECTIONS) == set(SERVICE_NAMES) <= set(schemas)
    assert not set(SERVICE_NAMES) & set(CoreConfig.model_fields), "a service's section is still in the core"
    for name, schema in schemas.items():
        assert schema.__module__ == f"obsy_{name}.config"
        assert ObsyConfig.model_fields[name].annotation is schema


def test_loading_the_configuration_imports_only_the_services_schema_modules():
    code = (
        "import sys, json; from obsy.config import ObsyConfig; "
        "print(json.dumps(sorted(m for m in sys.modules if m.startswith('obsy_'))))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    modules = json.loads(result.stdout)
    assert {f"obsy_{name}.config" for name in SERVICE_NAMES} <= set(modules)
    assert all(module.count(".") == 0 or module.endswith(".config") for module in modules), modules


@pytest.mark.parametrize("name", SERVICE_NAMES)
def test_a_services_schema_module_can_be_the_first_thing_imported(name):
    """Its import of obsy.config.base must not build the model, which would import it again half-made."""
    code = (
        f"import obsy_{name}.config; from obsy.config import ObsyConfig; "
        f"print(ObsyConfig.model_fields[{name!r}].annotation.__module__)"
    )
    result = subprocess.run([sys.executable, "-c", code], check=False, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == [f"obsy_{name}.config"]


def test_mistakes_in_a_service_owned_section_read_as_in_a_core_section(tmp_path):
    path = tmp_path / "obsy.yaml"
    [line] = problems(tmp_path, MINIMAL + "mcp:\n  devices:\n    roof_timout: 30\n")
    assert line == (
        f"unknown key 'mcp.devices.roof_timout' in config file {path} (did you mean 'mcp.devices.roof_timeout'?)"
    )
    [line] = problems(tmp_path, MINIMAL + "alpaca:\n  port: 70000\n")
    assert line.startswith(f"invalid value for 'alpaca.port' in config file {path}: ")
    [line] = problems(tmp_path, MINIMAL, env={"OBSY_CLOUDDETECT__DEBOUNCE_FRAMES": "0"})
    assert line.startswith("invalid value for 'clouddetect.debounce_frames' in environment variable ")


def test_environment_overrides_reach_a_service_owned_section(tmp_path):
    path = tmp_path / "obsy.yaml"
    path.write_text(MINIMAL + "mcp:\n  safe_delay: 60\n")
    config = load_config(path, env={"OBSY_MCP__SAFE_DELAY": "120", "OBSY_ALPACA__ENABLED": "true"})
    assert config.mcp.safe_delay == 120
    assert config.alpaca.enabled is True
    assert config.service("mcp") is config.mcp


def test_the_configuration_survives_pickling():
    config = load_config(EXAMPLE, env={})
    assert pickle.loads(pickle.dumps(config)) == config


Kept = create_model("Kept", __base__=Section, dome=missing_section_field("dome", "obsy-dome"))


def test_a_section_of_a_service_not_installed_is_kept_as_written():
    kept = Kept.model_validate({"dome": {"slit_timeout": 30, "shutter": {"name": "North"}}})
    assert isinstance(kept.dome, MissingSection)
    assert kept.dome.raw == {"slit_timeout": 30, "shutter": {"name": "North"}}
    assert kept.model_dump() == {"dome": {"slit_timeout": 30, "shutter": {"name": "North"}}}
    assert kept.model_copy(deep=True) == kept
    assert Kept().dome.raw == {}
    with pytest.raises(ConfigError) as caught:
        _ = kept.dome.slit_timeout
    assert caught.value.problems == [
        "the 'dome' section needs package obsy-dome, which is not installed here (reading dome.slit_timeout)"
    ]


def test_a_section_of_a_service_not_installed_must_still_be_a_mapping():
    with pytest.raises(ValidationError, match="the dome section must be a mapping of settings, not list"):
        Kept.model_validate({"dome": [1, 2]})


ADDON_SCHEMA = """
from pydantic import Field

from obsy.config.base import ServiceSection


class DomeConfig(ServiceSection):
    slit_timeout: float = Field(default=60.0, gt=0, description="seconds for the slit to open")
"""


def test_an_add_on_registers_its_own_section(tmp_path):
    """A package outside OBSY registers a section through the entry-point group alone."""
    package = tmp_path / "obsy_dome"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "config.py").write_text(textwrap.dedent(ADDON_SCHEMA))
    info = tmp_path / "obsy_dome-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: obsy-dome\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text("[obsy.config_sections]\ndome = obsy_dome.config:DomeConfig\n")
    config_file = tmp_path / "obsy.yaml"
    code = textwrap.dedent(
        f"""
        import sys
        from obsy.config import ConfigError, load_config
        for text in ("dome:\\n  slit_timeout: 45\\n", "dome:\\n  slit_timout: 45\\n"):
            open({str(config_file)!r}, "w").write({MINIMAL!r} + text)
            try:
                print(type(load_config({str(config_file)!r}, env={{}}).dome).__name__)
            except ConfigError as error:
                print(error)
        """
    )
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(tmp_path), os.environ.get("PYTHONPATH", "")])}
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True, env=env
    )
    assert result.stdout.splitlines() == [
        "DomeConfig",
        f"unknown key 'dome.slit_timout' in config file {config_file} (did you mean 'dome.slit_timeout'?)",
    ]


def argument_value(node: ast.expr) -> object:
    """A literal, or a core sub-schema's defaults (``SchedulerTransitsConfig()``: a whole sub-section)."""
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and not node.args and not node.keywords:
        return getattr(obsy.config, node.func.id)()
    return ast.literal_eval(node)


def setting_of_calls() -> list[tuple[str, str, str, object]]:
    """Every ``.setting_of("section", "key", default)`` in the services and tools: (file, section, key, default)."""
    calls = []
    for path in sorted([*REPO.glob("services/*/obsy_*/**/*.py"), *REPO.glob("tools/*/obsy_*/**/*.py")]):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Call) and getattr(node.func, "attr", None) == "setting_of":
                section, key, default = (argument_value(argument) for argument in node.args)
                calls.append((str(path.relative_to(REPO)), section, key, default))
    return calls


def test_every_read_of_another_services_setting_names_the_schemas_default():
    calls = setting_of_calls()
    assert ("services/web/obsy_web/pages.py", "weather", "allow_simulation", False) in calls
    assert ("services/weather/obsy_weather/simulator.py", "allsky", "camera.device", "CCD Simulator") in calls
    assert ("services/mcp/obsy_mcp/service.py", "scheduler", "ekos.camera", "CCD Simulator") in calls
    assert ("services/imaging/obsy_imaging/service.py", "scheduler", "ekos.fits_dir", None) in calls
    assert ("services/imaging/obsy_imaging/config.py", "scheduler", "transits", SchedulerTransitsConfig()) in calls
    assert ("services/web/obsy_web/context.py", "imaging", "repository", None) in calls
    for where, section, key, default in calls:
        schema_default = ObsyConfig.model_fields[section].annotation()
        for part in key.split("."):
            schema_default = getattr(schema_default, part)
        assert schema_default == default, f"{where}: {section}.{key} defaults to {schema_default!r}, not {default!r}"


def test_a_setting_of_a_service_not_installed_is_read_as_written(tmp_path):
    config = load_config(EXAMPLE, env={})
    assert config.setting_of("weather", "allow_simulation", False) is config.weather.allow_simulation

    def without_weather(written: dict) -> ObsyConfig:
        return config.model_copy(update={"weather": MissingSection("weather", "obsy-weather", written)})

    assert without_weather({}).setting_of("weather", "allow_simulation", False) is False
    assert without_weather({"allow_simulation": True}).setting_of("weather", "allow_simulation", False) is True
    with pytest.raises(ConfigError, match=r"invalid value for 'weather.allow_simulation': Input should be a valid"):
        without_weather({"allow_simulation": "sometimes"}).setting_of("weather", "allow_simulation", False)
    assert without_weather({}).setting_of("allsky", "camera.device", "CCD Simulator") == config.allsky.camera.device
    without_allsky = config.model_copy(
        update={"allsky": MissingSection("allsky", "obsy-allsky", {"camera": {"device": "ZWO ASI178MC"}})}
    )
    assert without_allsky.setting_of("allsky", "camera.device", "CCD Simulator") == "ZWO ASI178MC"
    assert without_allsky.setting_of("allsky", "camera.gain", 0) == 0


def test_a_sub_section_of_a_service_not_installed_is_read_with_its_core_schema(tmp_path):
    config = load_config(EXAMPLE, env={})
    assert config.setting_of("scheduler", "transits", SchedulerTransitsConfig()) is config.scheduler.transits
    without_scheduler = config.model_copy(
        update={"scheduler": MissingSection("scheduler", "obsy-scheduler", {"transits": {"baseline_min": 30}})}
    )
    transits = without_scheduler.setting_of("scheduler", "transits", SchedulerTransitsConfig())
    assert transits == SchedulerTransitsConfig(baseline_min=30)
    written = {"transits": {"baseline_min": 400, "ephemeris_fil": "a.csv"}}
    badly = config.model_copy(update={"scheduler": MissingSection("scheduler", "obsy-scheduler", written)})
    with pytest.raises(ConfigError) as caught:
        badly.setting_of("scheduler", "transits", SchedulerTransitsConfig())
    assert caught.value.problems == [
        "invalid value for 'scheduler.transits.baseline_min': Input should be less than or equal to 360",
        "invalid value for 'scheduler.transits.ephemeris_fil': Extra inputs are not permitted",
    ]


def test_a_services_cross_section_check_reads_a_section_kept_as_written(tmp_path):
    """The imaging service checks its transits against the scheduler's ephemeris file, installed or not."""
    config = load_config(EXAMPLE, env={})
    enabled = config.imaging.model_copy(
        update={"transits": config.imaging.transits.model_copy(update={"enabled": True, "ephemeris_file": None})}
    )

    def without_scheduler(written: dict) -> ObsyConfig:
        return config.model_copy(update={"scheduler": MissingSection("scheduler", "obsy-scheduler", written)})

    enabled.check_config(without_scheduler({"transits": {"ephemeris_file": str(tmp_path / "p.csv")}}))
    with pytest.raises(ValueError, match=r"imaging\.transits is enabled but no ephemeris file is set"):
        enabled.check_config(without_scheduler({}))


def test_a_services_cross_section_check_reads_as_a_core_mistake(tmp_path):
    path = tmp_path / "obsy.yaml"
    [line] = problems(tmp_path, MINIMAL + "web:\n  sites:\n    - prefix: obsy/north\n")
    assert line == (
        f"invalid value for '(top level)' in config file {path}: "
        "web.sites: the prefixes 'obsy' and 'obsy/north' overlap"
    )
    [line] = problems(tmp_path, MINIMAL + "imaging:\n  transits:\n    enabled: true\n    observer_code: TST01\n")
    assert line.endswith(
        "imaging.transits is enabled but no ephemeris file is set: set imaging.transits.ephemeris_file "
        "or scheduler.transits.ephemeris_file (a NASA Exoplanet Archive CSV export)"
    )


#: Loads a config file (argv[2]) as a service's image would: only that service's schema (argv[1]) registered.
ONE_SERVICES_IMAGE = """
import importlib.metadata, json, sys
everything = importlib.metadata.entry_points
def only_one(**params):
    found = everything(**params)
    if params.get("group") == "obsy.config_sections":
        return importlib.metadata.EntryPoints(e for e in found if e.name == sys.argv[1])
    return found
importlib.metadata.entry_points = only_one
from obsy.config import ConfigError, load_config
try:
    config = load_config(sys.argv[2], env={})
except ConfigError as error:
    print(json.dumps(error.problems))
else:
    print(json.dumps([type(config.scheduler).__name__, config.scheduler.raw["transits"]["ephemeris_file"]]))
"""


def test_the_imaging_image_checks_its_transits_against_the_scheduler_section_as_written(tmp_path):
    """Only obsy-imaging's schema registered (its image): the scheduler's section is kept as written,
    and imaging's check of its transits reads the ephemeris file from there."""
    path = tmp_path / "obsy.yaml"
    transits = "imaging:\n  transits:\n    enabled: true\n    observer_code: TST01\n"

    def load(text: str) -> list[str]:
        path.write_text(MINIMAL + transits + text)
        argv = [sys.executable, "-c", ONE_SERVICES_IMAGE, "imaging", str(path)]
        return json.loads(subprocess.run(argv, capture_output=True, text=True, timeout=60, check=True).stdout)

    assert load("scheduler:\n  transits:\n    ephemeris_file: p.csv\n") == ["MissingSection", "p.csv"]
    [problem] = load("")
    assert problem.endswith(
        "imaging.transits is enabled but no ephemeris file is set: set imaging.transits.ephemeris_file "
        "or scheduler.transits.ephemeris_file (a NASA Exoplanet Archive CSV export)"
    )
    [problem] = load("scheduler:\n  transits:\n    baseline_min: 400\n")
    assert problem == "invalid value for 'scheduler.transits.baseline_min': Input should be less than or equal to 360"
