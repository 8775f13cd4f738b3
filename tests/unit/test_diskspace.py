"""The free-space watch on this machine's real disk: levels from limits set around its real free space,
one event per change (never per measurement), recovery only past the margin, bad limits named."""

from __future__ import annotations

import shutil

import pytest

from obsy.config import DiskConfig, ObsyConfig
from obsy.diskspace import DiskWatch, measure

OFF = {"warning_free_gb": 0, "warning_free_percent": 0, "critical_free_gb": 0, "critical_free_percent": 0}


def limits(**values: float) -> DiskConfig:
    return DiskConfig(**{**OFF, **values})


def test_the_measurement_is_the_real_file_systems_free_space(tmp_path):
    usage = measure(tmp_path / "not" / "made" / "yet")  # a folder not made yet: its nearest existing parent
    total, _used, free = shutil.disk_usage(tmp_path)
    assert usage.total_gb == pytest.approx(total / 1e9)
    assert usage.free_gb == pytest.approx(free / 1e9, rel=0.01)  # others write to this disk meanwhile
    assert usage.free_percent == pytest.approx(100 * free / total, rel=0.01)


def test_a_limit_above_the_free_space_is_critical_for_real_and_told_once_per_change(tmp_path):
    watch = DiskWatch("imaging", {"repository": tmp_path}, limits())
    assert watch.check() == []  # ok at the first measurement: nothing to say
    assert watch.level == "ok"

    watch.settings = limits(warning_free_gb=1e9, critical_free_gb=1e9)  # an exabyte: more than any disk here
    [event] = watch.check()
    assert (event.service, event.kind, event.level) == ("imaging", "disk_critical", "error")
    assert event.data["name"] == "repository" and event.data["previous"] == "ok"
    assert "below the critical level (1e+09 GB" in event.message
    assert watch.check() == [] and watch.check() == []  # still critical: no more events
    health = watch.health()
    assert health["level"] == "critical"
    assert health["paths"]["repository"]["path"] == str(tmp_path)
    assert health["free_gb"] == health["paths"]["repository"]["free_gb"] > 0

    watch.settings = limits(warning_free_percent=100)  # below 100 % free: a warning, never critical
    [event] = watch.check()
    assert (event.kind, event.level, event.data["previous"]) == ("disk_warning", "warning", "critical")

    watch.settings = limits()
    [event] = watch.check()
    assert (event.kind, event.level) == ("disk_ok", "info")
    assert event.message.endswith("again")


def test_a_disk_at_its_limit_does_not_flap(tmp_path):
    free_gb = measure(tmp_path).free_gb
    watch = DiskWatch("allsky", {"images": tmp_path}, limits(critical_free_gb=free_gb * 1.02, warning_free_gb=1e9))
    assert [event.kind for event in watch.check()] == ["disk_critical"]
    # Free space now just above the limit, within the 5 % margin: still critical.
    watch.settings = limits(critical_free_gb=free_gb / 1.03, warning_free_gb=1e9)
    assert watch.check() == [] and watch.level == "critical"
    # Clear of the margin: back to warning (the warning limit is still above the free space).
    watch.settings = limits(critical_free_gb=free_gb / 1.2, warning_free_gb=1e9)
    assert [event.kind for event in watch.check()] == ["disk_warning"]


def test_the_first_measurement_of_a_full_disk_is_told(tmp_path):
    watch = DiskWatch("web", {"database": tmp_path}, limits(warning_free_percent=100))
    [event] = watch.check()
    assert event.kind == "disk_warning" and event.data["previous"] is None


def test_critical_limits_above_the_warning_ones_are_refused():
    with pytest.raises(ValueError, match="critical limits must not be above the warning limits"):
        DiskConfig(warning_free_gb=5, critical_free_gb=10)
    config = ObsyConfig(site={"latitude": 48.2, "longitude": 16.4, "elevation": 180})
    assert (config.disk.warning_free_gb, config.disk.critical_free_gb) == (10.0, 2.0)
