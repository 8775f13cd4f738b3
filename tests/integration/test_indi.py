"""obsy.indi against a real indiserver running the INDI simulator drivers."""

from __future__ import annotations

import logging
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from obsy.indi import IndiClient, IndiError, IndiRangeError, IndiTimeout, PropertySnapshot
from tests.support.indiserver import CCD, ROOF, TELESCOPE, WEATHER, IndiServer, require_indi
from tests.support.ports import free_port

pytestmark = pytest.mark.integration

DRIVERS = ["indi_simulator_telescope", "indi_simulator_ccd", "indi_rolloff_dome", "indi_simulator_weather"]
pytest.importorskip("PyIndi", reason="pyindi-client is not installed (pip install 'obsy-core[indi]')")
require_indi(DRIVERS)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[IndiServer]:
    """One indiserver with all simulators, shared by the tests that do not restart it."""
    indiserver = IndiServer(tmp_path_factory.mktemp("indiserver"), DRIVERS)
    indiserver.start()
    try:
        yield indiserver
    finally:
        indiserver.stop()


@pytest.fixture(scope="module")
def indi(server: IndiServer) -> Iterator[IndiClient]:
    with IndiClient.from_config(server.config(), timeout=10.0) as client:
        yield client


@pytest.fixture(scope="module")
def telescope(indi: IndiClient) -> str:
    indi.connect_device(TELESCOPE)
    # Properties appear one by one after CONNECT; the park state is loaded last.
    indi.wait_for(TELESCOPE, "TELESCOPE_PARK", lambda p: any(p.values.values()), what="park state known")
    indi.wait_property(TELESCOPE, "EQUATORIAL_EOD_COORD")
    return TELESCOPE


def test_connects_and_lists_the_simulators(server: IndiServer) -> None:
    with IndiClient.from_config(server.config()) as client:
        assert client.connected
        for device in (TELESCOPE, CCD, ROOF, WEATHER):
            client.wait_device(device, timeout=5)
        assert {TELESCOPE, CCD, ROOF, WEATHER} <= set(client.devices())
        client.wait_property(TELESCOPE, "DRIVER_INFO", timeout=5)  # a device comes before its properties
        assert {"CONNECTION", "DRIVER_INFO"} <= set(client.properties(TELESCOPE))
        assert client.get_text(TELESCOPE, "DRIVER_INFO")["DRIVER_EXEC"] == "indi_simulator_telescope"
    assert not client.connected
    with pytest.raises(IndiError, match="not connected"):
        client.get_text(TELESCOPE, "DRIVER_INFO")


def test_a_client_watching_one_device_is_sent_only_that_devices_properties(server: IndiServer) -> None:
    with IndiClient.from_config(server.config(), watch=[CCD]) as client:
        client.wait_property(CCD, "DRIVER_INFO", timeout=5)
        time.sleep(0.5)  # what else the server would send has come by now
        assert client.devices() == [CCD]
        with pytest.raises(IndiTimeout):
            client.wait_device(TELESCOPE, timeout=0.3)


def test_the_test_server_waits_for_devices_and_names_one_that_never_comes(server: IndiServer) -> None:
    server.wait_devices((TELESCOPE, CCD), timeout=10)  # what the Ekos tests do before Ekos makes its trains
    with pytest.raises(TimeoutError, match="has no device Camera That Is Not There after 2 s"):
        server.wait_devices((TELESCOPE, "Camera That Is Not There"), timeout=2)


def test_missing_device_and_property_time_out_promptly(indi: IndiClient) -> None:
    indi.wait_device(TELESCOPE)
    started = time.monotonic()
    with pytest.raises(IndiTimeout) as caught:
        indi.wait_device("No Such Device", timeout=0.5)
    assert time.monotonic() - started < 2
    message = str(caught.value)
    assert "'No Such Device'" in message
    assert indi.address in message
    assert "0.5 s" in message
    assert TELESCOPE in message  # the known devices are listed
    assert isinstance(caught.value, IndiError)
    assert isinstance(caught.value, TimeoutError)

    with pytest.raises(IndiTimeout, match=rf"{TELESCOPE}\.NO_SUCH_PROPERTY .*waited 0\.3 s"):
        indi.wait_property(TELESCOPE, "NO_SUCH_PROPERTY", timeout=0.3)
    with pytest.raises(IndiTimeout, match=r"DRIVER_INFO .* did not reach an impossible state .*waited 0\.2 s"):
        indi.wait_for(TELESCOPE, "DRIVER_INFO", lambda p: False, timeout=0.2, what="an impossible state")
    with pytest.raises(IndiError, match="NO_SUCH_PROPERTY is not defined"):
        indi.get_number(TELESCOPE, "NO_SUCH_PROPERTY")
    with pytest.raises(IndiError, match="is a text property, not number"):
        indi.get_number(TELESCOPE, "DRIVER_INFO")


def test_connect_to_a_closed_port_times_out() -> None:
    client = IndiClient("127.0.0.1", free_port(), connect_timeout=0.5, reconnect_interval=0.1)
    started = time.monotonic()
    with pytest.raises(IndiTimeout, match=rf"cannot connect to indiserver at {client.address}; waited 0\.5 s"):
        client.connect()
    assert time.monotonic() - started < 3
    assert not client.connected
    client.disconnect()


def test_telescope_numbers_switches_and_text(indi: IndiClient, telescope: str) -> None:
    seen: list[tuple[str, str, str, dict[str, Any]]] = []
    remove = indi.add_listener(lambda dev, name, state, values: seen.append((dev, name, state, dict(values))))
    try:
        assert indi.is_device_connected(telescope)
        on_coord_set = indi.get_property(telescope, "ON_COORD_SET")
        assert on_coord_set.type == "switch"
        assert on_coord_set.rule == "OneOfMany"
        assert set(on_coord_set.values) == {"TRACK", "SLEW", "SYNC"}
        with pytest.raises(IndiError, match="OneOfMany"):
            indi.set_switch(telescope, "ON_COORD_SET", ["TRACK", "SLEW"])
        with pytest.raises(IndiError, match="no element 'FLY'"):
            indi.set_switch(telescope, "ON_COORD_SET", "FLY")

        # Sync: the mount takes the coordinates at once.
        indi.set_switch(telescope, "ON_COORD_SET", "SYNC")
        assert indi.get_switch(telescope, "ON_COORD_SET") == {"TRACK": False, "SLEW": False, "SYNC": True}
        synced = indi.set_number(telescope, "EQUATORIAL_EOD_COORD", {"RA": 5.5, "DEC": 80.0})
        assert synced is not None
        # The first answer: Idle from the simulator's own update while not tracking, then Ok.
        assert synced.state in ("Idle", "Ok")
        assert synced.values["RA"] == pytest.approx(5.5, abs=1e-3)
        assert synced.values["DEC"] == pytest.approx(80.0, abs=1e-3)

        # Slew a little (one degree): set_number waits until the property leaves Busy.
        indi.set_switch(telescope, "ON_COORD_SET", "TRACK")
        start = indi.get_number(telescope, "EQUATORIAL_EOD_COORD")
        target = {"RA": start["RA"], "DEC": start["DEC"] - 1.0}
        arrived = indi.set_number(telescope, "EQUATORIAL_EOD_COORD", target, timeout=20)
        assert arrived is not None
        assert arrived.state == "Ok"
        assert arrived.values["DEC"] == pytest.approx(target["DEC"], abs=0.01)
        assert indi.property_state(telescope, "EQUATORIAL_EOD_COORD") in ("Ok", "Busy")  # Busy: tracking updates
        assert indi.get_switch(telescope, "TELESCOPE_TRACK_STATE")["TRACK_ON"] is True

        # A configuration number: the elements not named keep their values.
        before = indi.get_number(telescope, "TELESCOPE_INFO")
        indi.set_number(telescope, "TELESCOPE_INFO", {"TELESCOPE_APERTURE": 203.0})
        after = indi.get_number(telescope, "TELESCOPE_INFO")
        assert after["TELESCOPE_APERTURE"] == 203.0
        assert after["TELESCOPE_FOCAL_LENGTH"] == before["TELESCOPE_FOCAL_LENGTH"]
        assert indi.get_property(telescope, "TELESCOPE_INFO").limits["TELESCOPE_APERTURE"][:2] == (10.0, 5000.0)

        indi.set_text(telescope, "SCOPE_CONFIG_NAME", {"SCOPE_CONFIG_NAME": "obsy test scope"})
        assert indi.get_text(telescope, "SCOPE_CONFIG_NAME") == {"SCOPE_CONFIG_NAME": "obsy test scope"}
        with pytest.raises(IndiError, match="read-only"):
            indi.set_number(telescope, "MOUNT_AXES", {"PRIMARY": 0.0})
    finally:
        remove()

    coords = [event for event in seen if event[:2] == (telescope, "EQUATORIAL_EOD_COORD")]
    assert coords, "the listener saw no EQUATORIAL_EOD_COORD update"
    assert {"Ok", "Busy"} <= {state for _, _, state, _ in coords}
    assert all(set(values) == {"RA", "DEC"} for *_, values in coords)
    count = len(seen)
    time.sleep(0.6)  # the simulator polls every 250 ms; a removed listener hears nothing
    assert len(seen) == count


def test_telescope_parks_and_unparks(indi: IndiClient, telescope: str) -> None:
    indi.wait_for(telescope, "EQUATORIAL_EOD_COORD", lambda p: p.state != "Busy", timeout=30, what="not slewing")
    # Park where the mount is now, so that parking needs no long slew.
    indi.set_switch(telescope, "TELESCOPE_PARK_OPTION", "PARK_CURRENT")
    parked = indi.set_switch(telescope, "TELESCOPE_PARK", "PARK", timeout=30)
    assert parked is not None
    assert parked.values == {"PARK": True, "UNPARK": False}
    assert indi.property_state(telescope, "TELESCOPE_PARK") == "Ok"

    # A parked mount refuses to move: the driver answers Idle and stays put.
    where = indi.get_number(telescope, "EQUATORIAL_EOD_COORD")
    refused = indi.set_number(telescope, "EQUATORIAL_EOD_COORD", {"RA": (where["RA"] + 3) % 24, "DEC": 10.0})
    assert refused is not None
    assert refused.state == "Idle"
    assert indi.get_number(telescope, "EQUATORIAL_EOD_COORD")["DEC"] == pytest.approx(where["DEC"], abs=0.01)

    unparked = indi.set_switch(telescope, "TELESCOPE_PARK", "UNPARK", timeout=30)
    assert unparked is not None
    assert unparked.values == {"PARK": False, "UNPARK": True}


def test_alert_answer_raises(indi: IndiClient) -> None:
    indi.connect_device(CCD)
    indi.wait_property(CCD, "CCD_EXPOSURE")
    with pytest.raises(IndiError, match=rf"{CCD}\.CCD_EXPOSURE .*answered Alert"):
        # limit: 3600 s; sent anyway, so the driver is the one that says no
        indi.set_number(CCD, "CCD_EXPOSURE", {"CCD_EXPOSURE_VALUE": 5000.0}, check_limits=False)


def test_a_number_outside_its_declared_range_is_refused_before_sending(indi: IndiClient) -> None:
    indi.connect_device(CCD)
    gain = indi.wait_property(CCD, "CCD_GAIN")
    assert indi.number_limits(CCD, "CCD_GAIN", "GAIN") == (0.0, 100.0)  # the simulator's declared range
    with pytest.raises(IndiRangeError, match=rf"{CCD}\.CCD_GAIN\.GAIN = 200 is outside the range 0\.\.100"):
        indi.set_number(CCD, "CCD_GAIN", {"GAIN": 200})
    with pytest.raises(IndiRangeError, match="nan is outside"):
        indi.set_number(CCD, "CCD_GAIN", {"GAIN": float("nan")})
    assert indi.get_property(CCD, "CCD_GAIN").values == gain.values
    assert indi.set_number(CCD, "CCD_GAIN", {"GAIN": 100}).values["GAIN"] == 100  # the range's edge is in it
    with pytest.raises(IndiError, match="no element 'NOPE'"):
        indi.number_limits(CCD, "CCD_GAIN", "NOPE")


def test_ccd_exposure_delivers_a_fits_blob(indi: IndiClient) -> None:
    indi.connect_device(CCD)
    indi.wait_property(CCD, "CCD_EXPOSURE")
    indi.wait_property(CCD, "CCD1")
    indi.enable_blobs(CCD)
    indi.clear_blobs()
    indi.set_number(CCD, "CCD_BINNING", {"HOR_BIN": 2, "VER_BIN": 2})  # a smaller image, made faster
    indi.set_number(CCD, "CCD_EXPOSURE", {"CCD_EXPOSURE_VALUE": 0.1}, wait=False)
    blob = indi.wait_blob(CCD, timeout=20)
    assert blob.device == CCD
    assert blob.property == "CCD1"
    assert blob.name == "CCD1"
    assert blob.format == ".fits"
    assert isinstance(blob.data, bytes)
    assert blob.data.startswith(b"SIMPLE")
    assert len(blob.data) % 2880 == 0
    assert abs(blob.received_at - time.time()) < 60
    indi.wait_for(CCD, "CCD_EXPOSURE", lambda p: p.state == "Ok", timeout=10, what="exposure done")
    with pytest.raises(IndiTimeout, match="no BLOB from CCD Simulator"):
        indi.wait_blob(CCD, timeout=0.2)


def test_weather_simulator_takes_its_values_from_weather_control(indi: IndiClient) -> None:
    indi.connect_device(WEATHER)
    indi.wait_property(WEATHER, "WEATHER_CONTROL")
    indi.wait_property(WEATHER, "WEATHER_PARAMETERS")
    indi.set_number(WEATHER, "WEATHER_CONTROL", {"Temperature": 2.5, "Wind": 30.0, "Gust": 35.0, "Precip": 0.0})
    # The simulator applies the values on its next update (WEATHER_UPDATE, 60 s) or on refresh.
    indi.set_switch(WEATHER, "WEATHER_REFRESH", "REFRESH")
    weather = indi.wait_for(
        WEATHER,
        "WEATHER_PARAMETERS",
        lambda p: p.values["WEATHER_TEMPERATURE"] == 2.5,
        timeout=10,
        what="temperature 2.5",
    )
    assert weather.values["WEATHER_WIND_SPEED"] == 30.0
    assert weather.values["WEATHER_WIND_GUST"] == 35.0
    status = indi.wait_for(WEATHER, "WEATHER_STATUS", lambda p: p.values["WEATHER_WIND_SPEED"] == "Alert", timeout=5)
    assert status.values["WEATHER_TEMPERATURE"] == "Ok"
    assert indi.get_light(WEATHER, "WEATHER_STATUS") == dict(status.values)


@pytest.mark.slow
def test_rolloff_roof_closes(indi: IndiClient) -> None:
    indi.connect_device(ROOF)
    indi.wait_for(ROOF, "DOME_PARK", lambda p: any(p.values.values()), what="park state known")
    if indi.get_switch(ROOF, "DOME_PARK")["PARK"]:
        pytest.skip("the roof simulator starts parked here")
    indi.set_switch(ROOF, "DOME_PARK", "PARK", wait=False)
    indi.wait_for(ROOF, "DOME_PARK", lambda p: p.state == "Busy", timeout=5, what="roof moving")
    closed = indi.wait_for(
        ROOF,
        "DOME_PARK",
        lambda p: p.state == "Ok" and p.values["PARK"],
        timeout=30,  # the simulator takes 10 s
        what="roof parked",
    )
    assert closed.values == {"PARK": True, "UNPARK": False}
    assert indi.get_switch(ROOF, "DOME_MOTION") == {"DOME_CW": False, "DOME_CCW": False}


def test_reconnects_after_the_server_restarts(tmp_path: Path) -> None:
    server = IndiServer(tmp_path, ["indi_simulator_telescope", "indi_simulator_ccd"])
    server.start()
    client = IndiClient.from_config(server.config(), reconnect_interval=0.1, reconnect_max_interval=0.5, timeout=10)
    reconnected = threading.Event()
    read_back: list[PropertySnapshot] = []

    @client.on_reconnect
    def read_state_back() -> None:
        read_back.append(client.wait_property(TELESCOPE, "CONNECTION", timeout=10))
        reconnected.set()

    try:
        client.connect()
        client.enable_blobs(CCD)  # a setting the client sends again after reconnecting
        client.connect_device(TELESCOPE)
        client.wait_for(TELESCOPE, "TELESCOPE_PARK", lambda p: any(p.values.values()), what="park state known")
        assert client.get_switch(TELESCOPE, "CONNECTION")["CONNECT"] is True

        # A wait for an answer that can no longer come ends when the server goes away.
        errors: list[BaseException] = []

        def slew_far() -> None:
            try:
                client.set_switch(TELESCOPE, "ON_COORD_SET", "TRACK")
                client.set_number(TELESCOPE, "EQUATORIAL_EOD_COORD", {"RA": 1.0, "DEC": -60.0}, timeout=30)
            except IndiError as error:
                errors.append(error)

        slewing = threading.Thread(target=slew_far)
        slewing.start()
        client.wait_for(TELESCOPE, "EQUATORIAL_EOD_COORD", lambda p: p.state == "Busy", timeout=5, what="slewing")
        server.stop()
        slewing.join(5)
        assert not slewing.is_alive()
        assert errors
        assert "lost" in str(errors[0])

        deadline = time.monotonic() + 5
        while client.connected and time.monotonic() < deadline:
            time.sleep(0.02)
        assert not client.connected
        # Nothing from before the loss is served as current.
        assert client.devices() == []
        with pytest.raises(IndiError, match="not connected"):
            client.get_number(TELESCOPE, "EQUATORIAL_EOD_COORD")
        with pytest.raises(IndiError, match="not connected"):
            client.property_state(TELESCOPE, "CONNECTION")

        server.start()  # same port, fresh drivers
        assert reconnected.wait(15), "on_reconnect callbacks did not run"
        assert client.connected
        # The restarted driver is disconnected again: the client reports what the server says.
        assert read_back[0].values == {"CONNECT": False, "DISCONNECT": True}
        assert client.is_device_connected(TELESCOPE) is False
        client.connect_device(TELESCOPE)
        # A fresh driver points at the pole again, not where the old one was slewing to.
        home = client.wait_for(TELESCOPE, "EQUATORIAL_EOD_COORD", lambda p: p.values["DEC"] == 90.0, timeout=5)
        assert set(home.values) == {"RA", "DEC"}
        assert client.get_number(TELESCOPE, "EQUATORIAL_EOD_COORD")["DEC"] == 90.0

        client.connect_device(CCD)
        client.wait_property(CCD, "CCD1")
        client.set_number(CCD, "CCD_BINNING", {"HOR_BIN": 4, "VER_BIN": 4})
        client.set_number(CCD, "CCD_EXPOSURE", {"CCD_EXPOSURE_VALUE": 0.05}, wait=False)
        assert client.wait_blob(CCD, timeout=20).data.startswith(b"SIMPLE")
    finally:
        client.disconnect()
        server.stop()
    assert not client.connected


def test_driver_messages_are_logged_at_info_only_for_the_devices_this_client_uses(tmp_path: Path, caplog) -> None:
    """A shared server has many devices: a service's log carries its own devices' messages."""
    indiserver = IndiServer(tmp_path, ["indi_simulator_telescope", "indi_rolloff_dome"])
    indiserver.start()
    try:
        with (
            caplog.at_level(logging.DEBUG, logger="obsy.indi.messages"),
            IndiClient.from_config(indiserver.config(), timeout=10.0) as client,
        ):
            client.wait_property(ROOF, "CONNECTION")  # the roof is this client's; the mount is not
            for device in (TELESCOPE, ROOF):  # connected by another program, as Ekos would
                subprocess.run(
                    ["indi_setprop", "-p", str(indiserver.port), f"{device}.CONNECTION.CONNECT=On"],
                    check=True,
                    timeout=10,
                )
            deadline = time.monotonic() + 15
            while time.monotonic() < deadline and not {TELESCOPE, ROOF} <= {
                r.getMessage().split(":")[0] for r in caplog.records
            }:
                time.sleep(0.2)
    finally:
        indiserver.stop()
    levels: dict[str, set[int]] = {}
    for record in caplog.records:
        levels.setdefault(record.getMessage().split(":")[0], set()).add(record.levelno)
    assert levels.get(ROOF) == {logging.INFO}, levels
    assert levels.get(TELESCOPE) == {logging.DEBUG}, levels
