"""Hydreon rain sensors through pyserial: the RG-15 on a pseudo-terminal, the RG-11's relay logic.

A pty cannot carry modem status lines (reading CTS on one fails with ENOTTY), so the RG-11
relay is exercised on pyserial's ``loop://`` port, whose CTS follows its RTS and DSR its
DTR: the test plays the relay by dropping the output the source holds high.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime

import pytest

from obsy.config import SerialRainSourceConfig
from obsy_weather.readings import Sample
from obsy_weather.sources.base import SourceError
from obsy_weather.sources.serial_rain import make_serial_rain_source, parse_rg15
from tests.support.rg15 import FakeRG15
from tests.support.watcher import Watcher
from tests.support.weather import RunningWeather, wait_verdict

pytestmark = pytest.mark.integration

NOW = datetime(2026, 1, 15, 22, 0, tzinfo=UTC)


@pytest.fixture
def gauge() -> Iterator[FakeRG15]:
    with FakeRG15() as fake:
        yield fake


def make(kind: str, port: str, **settings):
    delivered: list[Sample] = []
    config = SerialRainSourceConfig.model_validate(
        {"type": kind, "name": kind, "port": port, "timeout": 0.3, **settings}
    )
    return make_serial_rain_source(config, delivered.extend, lambda: NOW), delivered


def values(samples: list[Sample]) -> dict[str, float | bool]:
    return {s.quantity: s.value for s in samples}


def test_rg15_parser_reads_both_unit_systems_and_ignores_extra_fields() -> None:
    imperial = parse_rg15("Acc  0.01 in, EventAcc  0.02 in, TotalAcc  0.03 in, RInt  0.12 iph\r\n")
    assert imperial == {"Acc": (0.01, "in"), "EventAcc": (0.02, "in"), "TotalAcc": (0.03, "in"), "RInt": (0.12, "in/h")}
    metric = parse_rg15("Acc 0.25 mm, EventAcc 1.02 mm, TotalAcc 12.40 mm, RInt 3.05 mmph, XTBTips 0, XTBAcc 0.00 mm")
    assert metric["RInt"] == (3.05, "mm/h")
    for noise in ("p", "Reset ReadySensor", "Acc 0.00 mm", "\x00\x17@@ 12,,x", "Acc x mm, RInt 1 mmph"):
        with pytest.raises(SourceError):
            parse_rg15(noise)


def test_rg15_on_a_pty(gauge) -> None:
    source, delivered = make("rg15", gauge.port)
    gauge.set_reading(0.25, 1.02, 12.4, 3.05)
    source.poll_once()
    assert values(delivered) == {"rain_rate": 3.05, "rain": True}
    assert gauge.commands[:2] == [b"P", b"R"]  # polling mode first, then a read

    gauge.set_reading(0.01, 0.02, 0.03, 0.12, metric=False)
    delivered.clear()
    source.poll_once()
    assert values(delivered) == {"rain_rate": pytest.approx(3.048), "rain": True}

    gauge.set_reading(0, 0, 0.03, 0)
    delivered.clear()
    source.poll_once()
    assert values(delivered) == {"rain_rate": 0.0, "rain": False}
    source.close()


def test_rg15_noise_and_silence_are_reported_and_it_recovers(gauge) -> None:
    source, _delivered = make("rg15", gauge.port)
    gauge.reading = b"\x00\x17garbage@@ 12,,x"
    assert source.poll_once() == []
    assert "no reading in the RG-15's answer" in source.last_error and source.errors == 1
    gauge.silent = True
    assert source.poll_once() == []
    assert "did not answer within 0.3 s" in source.last_error
    gauge.silent = False
    gauge.set_reading(0, 0, 0, 0.5)
    assert values(source.poll_once()) == {"rain_rate": 0.5, "rain": True}
    source.close()


def test_rg15_missing_port_is_an_error_not_a_crash() -> None:
    source, _delivered = make("rg15", "/dev/does-not-exist")
    assert source.poll_once() == []
    assert "cannot open /dev/does-not-exist" in source.last_error


@pytest.mark.parametrize(("line", "wet_when"), [("CTS", "closed"), ("DSR", "closed"), ("CTS", "open")])
def test_rg11_relay_on_a_modem_status_line(line, wet_when) -> None:
    source, delivered = make("rg11", "loop://", line=line, wet_when=wet_when)
    source.poll_once()  # opens the port and holds RTS and DTR high: the relay is closed
    assert values(delivered) == {"rain": wet_when == "closed"}
    assert source.port.rts and source.port.dtr
    # the relay opens: the status input loses the level
    if line == "CTS":
        source.port.rts = False
    else:
        source.port.dtr = False
    delivered.clear()
    source.poll_once()
    assert values(delivered) == {"rain": wet_when == "open"}
    source.close()


def test_rg11_on_a_port_without_status_lines_reports_the_error(gauge) -> None:
    source, _delivered = make("rg11", gauge.port)
    assert source.poll_once() == []
    assert gauge.port in source.last_error and "ioctl" in source.last_error


def test_service_turns_unsafe_on_rain_from_the_rg15_and_survives_noise(mosquitto, gauge, tmp_path) -> None:
    watcher = Watcher(mosquitto.port, ["obsy/weather/#"])
    source = {"type": "rg15", "name": "gauge", "port": gauge.port, "poll_interval": 0.2, "timeout": 0.5}
    try:
        with RunningWeather(
            tmp_path, mosquitto, sources=[source], limits={"rain": {"unsafe_if": True}}, safe_delay=0
        ) as weather:
            assert wait_verdict(watcher, lambda v: v.safe).reasons == []
            gauge.reading = b"\xff\xfe noise noise \x01"
            rg15 = weather.service.sources[0]
            watcher.wait_for(lambda _: rg15.errors >= 2)
            assert "no reading in the RG-15's answer" in rg15.last_error
            assert weather.thread.is_alive() and weather.service.verdict.safe  # noise is not rain
            gauge.set_reading(0.2, 0.2, 0.2, 1.5)
            rain = wait_verdict(watcher, lambda v: not v.safe)
            assert [(r.quantity, r.value) for r in rain.reasons] == [("rain", True)]
    finally:
        watcher.close()
