"""Each class of configuration mistake yields one clear line naming the key and where it came from."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from obsy.config import ConfigError, load_config

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "config" / "obsy.example.yaml"
MINIMAL = "site:\n  latitude: 48.2\n  longitude: 16.4\n"


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "obsy.yaml"
    path.write_text(text)
    return path


def problems(path: Path | None, env: dict[str, str] | None = None) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        load_config(path, env=env or {})
    return caught.value.problems


def test_the_documented_example_is_valid():
    config = load_config(EXAMPLE, env={})
    assert config.site.timezone == "Europe/Vienna"
    assert config.broker.prefix == "obsy"
    assert config.database_url().startswith("sqlite:///")


def test_unknown_key_is_named_with_file_and_suggestion(tmp_path):
    path = write(tmp_path, MINIMAL + "broker:\n  hots: mqtt.local\n")
    [line] = problems(path)
    assert line == f"unknown key 'broker.hots' in config file {path} (did you mean 'broker.host'?)"


def test_unknown_section_is_an_error(tmp_path):
    [line] = problems(write(tmp_path, MINIMAL + "wether:\n  enabled: true\n"))
    assert "unknown key 'wether'" in line
    assert "did you mean 'weather'" in line


def test_wrong_type_names_key_and_value(tmp_path):
    path = write(tmp_path, MINIMAL + "broker:\n  port: eighteen\n")
    [line] = problems(path)
    assert line.startswith(f"invalid value for 'broker.port' in config file {path}: ")
    assert "'eighteen'" in line


def test_out_of_range_value(tmp_path):
    [line] = problems(write(tmp_path, "site:\n  latitude: 91\n  longitude: 0\n"))
    assert "'site.latitude'" in line
    assert "less than or equal to 90" in line


def test_missing_required_value(tmp_path):
    [line] = problems(write(tmp_path, "site:\n  latitude: 10\n"))
    assert line.startswith("missing required key 'site.longitude' in config file")


def test_missing_site_without_any_file():
    lines = problems(None, env={})
    assert lines == ["missing required key 'site' in the configuration (no config file given)"]


def test_several_mistakes_give_one_line_each(tmp_path):
    lines = problems(write(tmp_path, "site:\n  latitude: 10\n  longtude: 5\nweb:\n  port: -1\n"))
    assert len(lines) == 3


def test_bad_yaml_names_the_line(tmp_path):
    path = write(tmp_path, MINIMAL + "broker:\n  host: [unclosed\n")
    [line] = problems(path)
    assert line.startswith(f"config file {path} is not valid YAML at line")


def test_top_level_must_be_a_mapping(tmp_path):
    [line] = problems(write(tmp_path, "- a\n- b\n"))
    assert "must hold a mapping" in line


def test_missing_file(tmp_path):
    [line] = problems(tmp_path / "nope.yaml")
    assert line == f"config file {tmp_path / 'nope.yaml'} does not exist"


def test_unknown_time_zone(tmp_path):
    [line] = problems(write(tmp_path, MINIMAL + "  timezone: Mars/Olympus\n"))
    assert "unknown time zone 'Mars/Olympus'" in line


def test_password_without_username(tmp_path):
    [line] = problems(write(tmp_path, MINIMAL + "broker:\n  password: secret\n"))
    assert "broker.password is set but broker.username is not" in line


def test_environment_overrides_the_file(tmp_path):
    path = write(tmp_path, MINIMAL + "broker:\n  host: from-file\n")
    config = load_config(path, env={"OBSY_BROKER__HOST": "from-env", "OBSY_BROKER__PORT": "8883", "OTHER": "x"})
    assert config.broker.host == "from-env"
    assert config.broker.port == 8883


def test_environment_error_names_the_variable(tmp_path):
    path = write(tmp_path, MINIMAL)
    [line] = problems(path, env={"OBSY_BROKER__PORT": "many"})
    assert line.startswith("invalid value for 'broker.port' in environment variable OBSY_BROKER__PORT")
    [unknown] = problems(path, env={"OBSY_BROKER__HOTS": "x"})
    assert "environment variable OBSY_BROKER__HOTS" in unknown


def test_obsy_variables_of_the_scripts_and_tools_are_not_taken_for_keys(tmp_path):
    """The test runner, the sky simulator and the scripts have OBSY_ variables of their own; a
    service started beside them must not fail on them, and a misspelt key still fails."""
    from obsy.config import NOT_CONFIG_ENV

    path = write(tmp_path, MINIMAL)
    env = dict.fromkeys(NOT_CONFIG_ENV - {"OBSY_CONFIG"}, "x") | {"OBSY_BROKER__HOST": "from-env"}
    assert {"OBSY_EXOTIC_PYTHON", "OBSY_TEST_WORKERS", "OBSY_SKYSIM_CONFIG"} <= set(env)
    assert load_config(path, env=env).broker.host == "from-env"
    [unknown] = problems(path, env={**env, "OBSY_EXOTIC_PYTHONN": "x"})
    assert "environment variable OBSY_EXOTIC_PYTHONN" in unknown


def test_secret_from_file(tmp_path):
    secret = tmp_path / "mqtt_password"
    secret.write_text("s3cret\n")
    env = {"OBSY_BROKER__USERNAME": "weather", "OBSY_BROKER__PASSWORD_FILE": str(secret)}
    config = load_config(write(tmp_path, MINIMAL), env=env)
    assert config.broker.password is not None
    assert config.broker.password.get_secret_value() == "s3cret"
    assert "s3cret" not in repr(config)


def test_unreadable_secret_file(tmp_path):
    [line] = problems(write(tmp_path, MINIMAL), env={"OBSY_BROKER__PASSWORD_FILE": str(tmp_path / "missing")})
    assert line.startswith("environment variable OBSY_BROKER__PASSWORD_FILE: cannot read secret file")


def test_config_path_from_environment(tmp_path):
    path = write(tmp_path, MINIMAL + "site:\n  latitude: 1\n  longitude: 2\n")
    config = load_config(None, env={"OBSY_CONFIG": str(path)})
    assert config.source_file == path
    assert config.site.latitude == 1


@pytest.mark.slow
def test_service_reports_config_errors_and_exits_2(tmp_path):
    path = write(tmp_path, MINIMAL + "mcp:\n  heartbeat_interval: soon\n")
    result = subprocess.run(
        [sys.executable, "-m", "obsy_mcp", "check-config", "--config", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 2
    assert "configuration error" in result.stderr
    assert "'mcp.heartbeat_interval'" in result.stderr
    assert str(path) in result.stderr


PHOTOMETRY = MINIMAL + "imaging:\n  photometry:\n"


def test_photometry_targets_from_a_chart_or_own_stars(tmp_path):
    text = PHOTOMETRY + (
        "    enabled: true\n"
        "    observer_code: ' tst01 '\n"
        "    gain_e_per_adu: 1.5\n"
        "    targets:\n"
        "      - {name: SS Cyg, chart_file: charts/X1.json, check: '105', filters: {Green: tg}}\n"
        "      - {name: V1 Psc, chart_id: X12345ABC, aliases: [V1 Psc test]}\n"
        "      - name: RZ Cet\n"
        "        ra: '00:49:41.4'\n"
        "        dec: '-00:52:51'\n"
        "        check: k\n"
        "        comparisons:\n"
        "          - {label: A, ra: 12.5, dec: -0.9, mag: 11.2}\n"
        "          - {label: K, ra: '00:49:20.7', dec: '-00:49:02', mag: 11.87, mag_err: 0.02}\n"
    )
    photometry = load_config(write(tmp_path, text), env={}).imaging.photometry
    assert photometry.enabled and photometry.observer_code == "TST01" and photometry.gain_e_per_adu == 1.5
    ss, v1, rz = photometry.targets
    assert ss.filters == {"Green": "TG"} and ss.check == "105"
    assert rz.ra == pytest.approx((49 / 60 + 41.4 / 3600) * 15) and rz.dec == pytest.approx(-(52 / 60 + 51 / 3600))
    assert rz.comparisons[1].dec == pytest.approx(-(49 / 60 + 2 / 3600))
    assert photometry.target_for("sscyg") is ss and photometry.target_for(" V1 PSC  TEST") is v1
    assert photometry.target_for("M 42") is None
    assert photometry.chart_cache_dir(tmp_path) == (tmp_path / "imaging" / "charts").resolve()


@pytest.mark.parametrize(
    ("target", "expected"),
    [
        ("{name: X}", "target X: give exactly one of chart_file, chart_id, fetch_by_name or comparisons"),
        ("{name: X, chart_file: a.json, chart_id: X111}", "(not chart_file and chart_id)"),
        ("{name: X, chart_id: 'X 1'}", "'X 1' is not an AAVSO chart ID"),
        ("{name: X, comparisons: [{label: A, ra: 1, dec: 1, mag: 10}]}", "own comparison stars need the target's ra"),
        (
            "{name: X, ra: 1, dec: 1, check: B, comparisons: [{label: A, ra: 1, dec: 1, mag: 10}]}",
            "check star B is not one of its comparisons",
        ),
        ("{name: X, ra: '12:61:00', dec: 1, chart_id: X111}", "ra '12:61:00' is neither degrees nor 'HH:MM:SS.s'"),
        ("{name: X, ra: 1, dec: 'north', chart_id: X111}", "dec 'north' is neither degrees nor '±DD:MM:SS'"),
        ("{name: 'X, Y', chart_id: X111}", "may not be blank or hold ',' or '|'"),
        ("{name: X, chart_id: X111, filters: {Green: 'T G'}}", "are not AAVSO filter codes"),
        ("{name: X, ra: 1, dec: 1, comparisons: [{label: A, ra: 1, dec: 1}]}", "'imaging.photometry.targets.0"),
    ],
)
def test_bad_photometry_targets_are_named(tmp_path, target, expected):
    text = PHOTOMETRY + f"    targets:\n      - {target}\n"
    [line] = problems(write(tmp_path, text))
    assert "imaging.photometry.targets" in line and expected in line


def test_photometry_needs_an_observer_code_and_distinct_names(tmp_path):
    [line] = problems(write(tmp_path, PHOTOMETRY + "    enabled: true\n"))
    assert "observer_code (your AAVSO observer code) is needed" in line
    [line] = problems(write(tmp_path, PHOTOMETRY + "    observer_code: 'TST 01'\n"))
    assert "'imaging.photometry.observer_code'" in line and "is not an AAVSO observer code" in line
    text = PHOTOMETRY + "    targets:\n      - {name: SS Cyg, chart_id: X111}\n      - {name: sscyg, chart_id: X222}\n"
    [line] = problems(write(tmp_path, text))
    assert "targets SS Cyg and sscyg both answer to the name 'sscyg'" in line
