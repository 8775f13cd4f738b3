"""``obsy-scheduler plan``: any night, offline, files written where asked; bad input named, never a traceback."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET

import pytest
import yaml

from obsy.messages import ExposurePlan, Target, TargetList
from obsy_scheduler.service import main


@pytest.fixture
def config(tmp_path):
    path = tmp_path / "obsy.yaml"
    path.write_text(
        yaml.safe_dump(
            {
                "site": {"latitude": 48.2, "longitude": 16.4, "timezone": "Europe/Vienna"},
                "data_dir": str(tmp_path / "data"),
                "homeassistant": {"enabled": False},
                "scheduler": {"ekos": {"filters": ["Red", "Green", "H_Alpha", "Luminance"]}},
            }
        )
    )
    return path


def targets_file(tmp_path, *targets: Target, as_list: bool = False):
    path = tmp_path / "targets.json"
    if as_list:
        path.write_text(json.dumps([t.model_dump(mode="json") for t in targets]))
    else:
        path.write_text(TargetList(targets=list(targets)).model_dump_json())
    return path


NORTH = Target(
    id="north",
    name="North",
    ra_deg=40.0,
    dec_deg=80.0,
    exposure_plans=[ExposurePlan(filter="Ha", exposure_s=300, count=6)],
)
TYPO = Target(
    id="typo",
    name="Typo",
    ra_deg=42.0,
    dec_deg=80.0,
    exposure_plans=[ExposurePlan(filter="Blue", exposure_s=60, count=3)],
)


@pytest.mark.parametrize("as_list", [False, True])
def test_plans_the_night_asked_for_and_writes_its_files(tmp_path, config, capsys, as_list):
    targets = targets_file(tmp_path, NORTH, TYPO, as_list=as_list)
    out = tmp_path / "plans"
    assert main(["plan", "--night", "2027-01-15", "--targets", str(targets), "--out", str(out), "-c", str(config)]) == 0
    printed = capsys.readouterr().out
    (schedule,) = (out / "2027-01-15").glob("*/obsy-2027-01-15.esl")
    assert f"schedule: {schedule}" in printed
    assert "excluded typo: filter 'Blue' is not on the filter wheel" in printed
    (sequence,) = schedule.parent.glob("*.esq")
    assert ET.parse(sequence).getroot().findtext("Job/Filter") == "H_Alpha"
    assert "North: 6x300s H_Alpha" in printed


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (None, "cannot read"),
        ("{not json", "is not JSON"),
        ('{"targets": [{"id": "x"}]}', "is not a list of targets: targets.0.name: Field required"),
    ],
)
def test_bad_targets_are_named(tmp_path, config, capsys, content, message):
    path = tmp_path / "targets.json"
    if content is not None:
        path.write_text(content)
    assert main(["plan", "--targets", str(path), "--out", str(tmp_path / "o"), "-c", str(config)]) == 1
    assert message in capsys.readouterr().err


def test_a_start_time_needs_its_time_zone(tmp_path, config, capsys):
    targets = targets_file(tmp_path, NORTH)
    argv = ["plan", "--targets", str(targets), "--out", str(tmp_path / "o"), "-c", str(config)]
    assert main([*argv, "--from", "2027-01-15T22:00"]) == 1
    assert "has no time zone" in capsys.readouterr().err
    assert main([*argv, "--night", "2027-01-15", "--from", "2027-01-15T22:00+01:00"]) == 0
    (schedule,) = (tmp_path / "o" / "2027-01-15").glob("*/*.esl")
    start = ET.parse(schedule).getroot().find("Job/StartupCondition/Condition").get("value")
    assert start >= "2027-01-15T22:00:00+01:00"
