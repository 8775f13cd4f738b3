"""The shared KStars D-Bus client (obsy.kstars.dbus) against a real dbus-daemon with the Ekos stand-in
(tests/support/ekos_standin.py) on it: calls, properties, introspection, a call that is never
answered, a missing object, KStars off the bus."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from obsy.kstars.dbus import DBusCallError, DBusError, DBusTimeoutError, KStarsBus
from obsy.kstars.paths import (
    CAPTURE,
    CAPTURE_PATH,
    EKOS_PATH,
    KSTARS,
    KSTARS_PATH,
    SCHEDULER,
    SCHEDULER_PATH,
    SchedulerStatus,
)
from tests.support.ekos_standin import EkosStandIn, dbus_daemon_available

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(not dbus_daemon_available(), reason="dbus-daemon (Debian package dbus) is not installed"),
]


@pytest.fixture
def standin(tmp_path: Path) -> Iterator[EkosStandIn]:
    with EkosStandIn(tmp_path / "bus") as ekos:
        yield ekos


@pytest.fixture
def bus(standin: EkosStandIn) -> Iterator[KStarsBus]:
    with KStarsBus(standin.address, timeout=2) as client:
        yield client


def test_calls_and_properties_reach_the_service(standin: EkosStandIn, bus: KStarsBus) -> None:
    standin.camera = "Main Cam"
    assert bus.get_property(SCHEDULER_PATH, SCHEDULER, "status") == SchedulerStatus.IDLE
    assert bus.get_property(CAPTURE_PATH, CAPTURE, "camera") == "Main Cam"
    assert bus.call(SCHEDULER_PATH, SCHEDULER, "loadScheduler", "s", "/night.esl") is True
    bus.call(SCHEDULER_PATH, SCHEDULER, "start")
    assert bus.get_property(SCHEDULER_PATH, SCHEDULER, "status") == SchedulerStatus.RUNNING
    bus.set_property(CAPTURE_PATH, CAPTURE, "opticalTrain", "s", "Primary")  # taken, no error
    assert standin.calls == ["Scheduler.loadScheduler", "Scheduler.start"]


def test_objects_are_found_by_introspection(bus: KStarsBus) -> None:
    assert bus.has_object(KSTARS_PATH) and bus.has_object(EKOS_PATH) and bus.has_object(SCHEDULER_PATH)
    assert 'node name="Scheduler"' in bus.introspect(EKOS_PATH)
    assert not bus.has_object("/KStars/Ekos/Guide")  # not there (yet)
    assert not bus.has_object("/KStars/Ekos/Guide/Deeper")  # its parent is not there either


def test_a_call_without_a_reply_times_out_naming_the_method(standin: EkosStandIn, bus: KStarsBus) -> None:
    standin.unanswered = {"Scheduler.stop"}
    started = time.monotonic()
    with pytest.raises(
        DBusTimeoutError, match=r"org\.kde\.kstars\.Ekos\.Scheduler\.stop on /KStars/Ekos/Scheduler.*1 s"
    ):
        bus.call(SCHEDULER_PATH, SCHEDULER, "stop", timeout=1)
    assert time.monotonic() - started < 5
    # The client opens a fresh connection and goes on.
    assert bus.get_property(SCHEDULER_PATH, SCHEDULER, "status") == SchedulerStatus.IDLE


def test_a_missing_object_is_named(bus: KStarsBus) -> None:
    with pytest.raises(
        DBusCallError, match=r"Ekos\.Focus\.start on /KStars/Ekos/Focus .*no object /KStars/Ekos/Focus"
    ) as e:
        bus.call("/KStars/Ekos/Focus", "org.kde.kstars.Ekos.Focus", "start")
    assert e.value.name == "org.freedesktop.DBus.Error.UnknownObject"


def test_kstars_not_on_the_bus_is_said(standin: EkosStandIn) -> None:
    with (
        KStarsBus(standin.address, timeout=2, service="org.kde.kstars.nobody") as bus,
        pytest.raises(
            DBusCallError, match=r"org\.kde\.kstars\.location on /KStars .*org\.kde\.kstars\.nobody is not on the bus"
        ),
    ):
        bus.call(KSTARS_PATH, KSTARS, "location")


def test_arguments_that_do_not_fit_the_signature_are_an_error_and_the_connection_stays(bus: KStarsBus) -> None:
    with pytest.raises(DBusError, match="do not fit 's'"):
        bus.call(SCHEDULER_PATH, SCHEDULER, "loadScheduler", "s", 42)
    assert bus.call(SCHEDULER_PATH, SCHEDULER, "loadScheduler", "s", "/night.esl") is True
