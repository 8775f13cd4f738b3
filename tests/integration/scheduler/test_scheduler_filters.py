"""The scheduler reads the filter wheel's names from a real indiserver (the CCD simulator's wheel)."""

from __future__ import annotations

import time
import xml.etree.ElementTree as ET
from datetime import UTC, datetime

import pytest

from obsy.bus import Bus
from obsy.config import ObsyConfig
from obsy.indi import IndiClient
from obsy.messages import ExposurePlan, Target
from obsy_scheduler.service import SchedulerService
from tests.support.indiserver import CCD, IndiServer, pyindi_available

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(not pyindi_available(), reason="pyindi-client is not installed"),
]


def scheduler(tmp_path, indi: dict) -> SchedulerService:
    config = ObsyConfig.model_validate(
        {
            "site": {"latitude": 48.2, "longitude": 16.4, "timezone": "Europe/Vienna"},
            "data_dir": str(tmp_path),
            "indi": indi,
            "homeassistant": {"enabled": False},
        }
    )
    service = SchedulerService(config, Bus(config.broker, "scheduler"))  # never started: nothing is sent
    service.start()
    service.bus.publish = lambda *args, **kwargs: None  # type: ignore[method-assign]
    service.bus.publish_event = lambda *args, **kwargs: None  # type: ignore[method-assign]
    return service


def target(ident: str, *filters: str) -> Target:
    plans = [ExposurePlan(filter=name, exposure_s=300, count=4) for name in filters]
    return Target(id=ident, name=ident, ra_deg=40.0 + len(ident), dec_deg=80.0, exposure_plans=plans)


def test_filters_are_mapped_to_the_wheels_names_or_the_target_is_refused(tmp_path):
    night = datetime(2026, 11, 21, 15, 0, tzinfo=UTC)
    with IndiServer(tmp_path / "indi", ["indi_simulator_ccd"]) as indi, IndiClient(indi.host, indi.port) as client:
        # Ekos connects the camera; here the test does (and waits for the wheel it brings)
        client.connect_device(CCD)
        client.wait_property(CCD, "FILTER_NAME")
        service = scheduler(tmp_path, indi.config().model_dump(include={"host", "port"}))
        try:
            service._targets = [target("narrowband", "Ha", "Lum"), target("typo", "Red", "Hbeta")]
            plan = service.replan("targets", now=night)
            # The operator renames a slot in the driver: the plans know the new name (as soon as the
            # scheduler's own connection has the driver's update: asked again for a few seconds).
            client.set_text(CCD, "FILTER_NAME", {"FILTER_SLOT_NAME_1": "Hbeta"})
            deadline = time.monotonic() + 5
            while "'Red' is not" not in (renamed := service.replan("targets", now=night)).excluded.get("typo", ""):
                if time.monotonic() > deadline:
                    break
                time.sleep(0.1)
        finally:
            service.stop()
    assert plan.excluded["typo"] == (
        "filter 'Hbeta' is not on the filter wheel (CCD Simulator FILTER_NAME: Red, Green, Blue, H_Alpha, SII, "
        "OIII, LPR, Luminance): use one of those names, or map it in scheduler.ekos.filter_aliases"
    )
    (sequence,) = plan.sequence_paths
    assert [job.findtext("Filter") for job in ET.parse(sequence).getroot().iter("Job")] == ["H_Alpha", "Luminance"]
    assert service.health_details()["filters"] == "read from CCD Simulator FILTER_NAME"
    assert renamed.excluded["typo"].startswith(
        "filter 'Red' is not on the filter wheel (CCD Simulator FILTER_NAME: Hbeta, Green, Blue,"
    )


def test_without_indiserver_plans_go_on_unchecked_and_health_says_so(tmp_path):
    from tests.support.ports import free_port

    service = scheduler(tmp_path, {"host": "127.0.0.1", "port": free_port()})
    service._targets = [target("a", "Red")]
    try:
        plan = service.replan("targets", now=datetime(2026, 11, 21, 15, 0, tzinfo=UTC))
    finally:
        service.stop()
    assert plan.blocks
    assert service.health_details()["filters"].startswith("not checked: cannot read CCD Simulator FILTER_NAME")
