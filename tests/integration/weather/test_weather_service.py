"""The weather service on a real Mosquitto: MQTT sensors in, state and verdict out, garbage ignored."""

from __future__ import annotations

import json
import math
from collections.abc import Iterator

import pytest

from obsy.homeassistant import Node, discovery_payload
from obsy.homeassistant.lint import lint_discovery
from obsy.messages import ServiceHealth
from tests.support.watcher import Watcher
from tests.support.weather import RunningWeather, states, wait_state, wait_verdict

pytestmark = pytest.mark.integration

ZIGBEE = "zigbee2mqtt/garden_sensor"
ESPHOME_WIND = "esphome/roof/sensor/wind_speed/state"
HA_RAIN = "homeassistant_statestream/binary_sensor/rain/state"

SENSORS = {
    "type": "mqtt",
    "name": "broker",
    "max_age": 300,
    "sensors": [
        {"topic": ZIGBEE, "json_path": "temperature", "quantity": "ambient_temperature", "unit": "°F"},
        {"topic": ZIGBEE, "json_path": "humidity", "quantity": "humidity"},
        {"topic": ESPHOME_WIND, "quantity": "wind_speed", "unit": "m/s"},
        {"topic": HA_RAIN, "quantity": "rain"},
    ],
}
LIMITS = {
    "rain": {"unsafe_if": True},
    "wind_speed": {"unsafe_above": 40, "safe_below": 30},
    "humidity": {"unsafe_above": 90, "safe_below": 85, "required": False},
}


@pytest.fixture
def watcher(mosquitto) -> Iterator[Watcher]:
    w = Watcher(mosquitto.port, ["obsy/weather/#", "homeassistant/#"])
    yield w
    w.close()


def reading(state, quantity):
    return state.readings[quantity].value if quantity in state.readings else None


def test_mqtt_sensors_to_state_and_verdict(mosquitto, watcher, tmp_path) -> None:
    with RunningWeather(tmp_path, mosquitto, sources=[SENSORS], limits=LIMITS, safe_delay=0):
        watcher.wait_payload("obsy/weather/availability", b"online")
        first = wait_verdict(watcher, lambda v: True)
        assert not first.safe and {r.quantity for r in first.reasons} == {"rain", "wind_speed"}

        watcher.publish(ZIGBEE, json.dumps({"temperature": 50.0, "humidity": 81, "battery": 97, "linkquality": 120}))
        watcher.publish(ESPHOME_WIND, "2.5")
        watcher.publish(HA_RAIN, "off")
        state = wait_state(watcher, lambda s: reading(s, "rain") is False and reading(s, "wind_speed") == 9.0)
        assert reading(state, "ambient_temperature") == pytest.approx(10.0)
        assert reading(state, "humidity") == 81
        assert reading(state, "dew_point") == pytest.approx(6.9, abs=0.2)  # computed (Magnus)
        assert state.readings["dew_point"].source == "computed(broker)"
        assert state.readings["wind_speed"].unit == "km/h" and state.readings["wind_speed"].source == "broker"
        assert state.readings["wind_speed"].age_s is not None and not state.readings["wind_speed"].stale
        assert wait_verdict(watcher, lambda v: v.safe).reasons == []

        watcher.publish(HA_RAIN, "on")
        rain = wait_verdict(watcher, lambda v: not v.safe)
        assert [(r.quantity, r.value) for r in rain.reasons] == [("rain", True)]


def test_garbage_is_reported_and_ignored(mosquitto, watcher, tmp_path) -> None:
    with RunningWeather(tmp_path, mosquitto, sources=[SENSORS], limits=LIMITS, safe_delay=0) as weather:
        watcher.wait_payload("obsy/weather/availability", b"online")
        watcher.publish(ZIGBEE, json.dumps({"temperature": 50.0, "humidity": 40}))
        watcher.publish(ESPHOME_WIND, "2.5")
        watcher.publish(HA_RAIN, "off")
        wait_verdict(watcher, lambda v: v.safe)

        garbage = [
            (ZIGBEE, b"{not json"),
            (ZIGBEE, b'{"temperature": NaN, "humidity": -5}'),
            (ZIGBEE, b'{"temp": 12}'),
            (ESPHOME_WIND, b"\xff\xfe\x00garbage"),
            (ESPHOME_WIND, b"inf"),
            (HA_RAIN, b"perhaps"),
        ]
        for topic, payload in garbage:
            watcher.publish(topic, payload)
        watcher.publish(ESPHOME_WIND, "3.0")  # a good value after the garbage still counts
        state = wait_state(watcher, lambda s: reading(s, "wind_speed") == 10.8)
        assert reading(state, "humidity") == 40 and reading(state, "ambient_temperature") == pytest.approx(10.0)
        assert weather.thread.is_alive() and weather.service.verdict.safe
        status = weather.service.health_details()["sources"]["broker"]
        # two sensors read each zigbee payload: bad JSON x2, NaN, -5 %, missing keys x2; then 3 bad plain values
        assert status["rejected"] == 9
        assert status["last_error"].startswith("broker (mqtt): ")

        def health_shows_errors(_: object) -> bool:
            healths = [ServiceHealth.model_validate_json(m.payload) for m in watcher.on("obsy/weather/health")]
            return any(h.details.get("sources", {}).get("broker", {}).get("rejected") == 9 for h in healths)

        watcher.wait_for(health_shows_errors, timeout=10)
        assert all(not math.isnan(float(r.value)) for r in states(watcher)[-1].readings.values())


def test_home_assistant_entities(mosquitto, watcher, tmp_path) -> None:
    weather = RunningWeather(tmp_path, mosquitto, sources=[SENSORS], limits=LIMITS)
    entities = {e.object_id: e for e in weather.service.ha_entities()}
    assert {"safety", "rain", "humidity", "wind_speed", "sky_brightness", "dew_point"} <= set(entities)
    node = Node(prefix="obsy", service="weather", site_name="Test site")
    for entity in entities.values():
        payload = discovery_payload(entity, node)
        assert lint_discovery(entity.component, payload) == [], entity.object_id
    assert entities["safety"].device_class == "safety" and entities["safety"].json_attributes_topic.endswith("safety")
    assert entities["rain"].device_class == "moisture"
    humidity = entities["humidity"]
    assert (humidity.device_class, humidity.unit_of_measurement, humidity.state_class) == (
        "humidity",
        "%",
        "measurement",
    )
    assert (
        entities["wind_speed"].unit_of_measurement == "km/h"
        and entities["pressure"].device_class == "atmospheric_pressure"
    )


def test_home_assistant_templates_render_the_published_state(mosquitto, tmp_path) -> None:
    """The value templates, rendered with Jinja2 as Home Assistant does, on real payloads."""
    jinja2 = pytest.importorskip("jinja2")
    weather = RunningWeather(tmp_path, mosquitto, sources=[SENSORS], limits=LIMITS)
    entities = {e.object_id: e for e in weather.service.ha_entities()}
    environment = jinja2.Environment()

    def render(object_id: str, payload: str, template: str = "value_template") -> str:
        entity = entities[object_id]
        return environment.from_string(getattr(entity, template)).render(value_json=json.loads(payload)).strip()

    state = json.dumps(
        {
            "readings": {
                "humidity": {
                    "value": 81.0,
                    "unit": "%",
                    "source": "broker",
                    "measured_at": "2026-01-15T22:00:00Z",
                    "age_s": 3.0,
                    "stale": False,
                },
                "rain": {"value": True, "unit": "", "source": "rg11", "age_s": 1.0, "stale": False},
                "wind_speed": {"value": 12.0, "unit": "km/h", "source": "sim", "age_s": 900.0, "stale": True},
            }
        }
    )
    assert render("humidity", state) == "81.0"
    assert render("rain", state) == "ON"
    assert render("wind_speed", state) == "None"  # stale: unknown in Home Assistant
    assert render("pressure", state) == "None"  # no source
    assert json.loads(render("humidity", state, "json_attributes_template"))["source"] == "broker"
    verdict = '{"safe": false, "reasons": [{"quantity": "rain", "message": "rain true is unsafe"}]}'
    assert render("safety", verdict) == "ON"  # ON means unsafe
    assert render("safety", '{"safe": true, "reasons": []}') == "OFF"


def test_several_sources_at_once_and_the_heartbeat(mosquitto, watcher, tmp_path) -> None:
    """MQTT, an HTTP API and an RG-15 together; each reading names its source; unchanged state is republished."""
    from tests.support.rg15 import FakeRG15
    from tests.support.weather_http import FakeWeatherApi

    open_meteo = {
        "current_units": {"temperature_2m": "°C", "wind_speed_10m": "km/h", "cloud_cover": "%"},
        "current": {
            "time": "2026-01-15T22:00",
            "interval": 900,
            "temperature_2m": 4.0,
            "wind_speed_10m": 12.0,
            "cloud_cover": 20,
        },
    }
    with FakeWeatherApi() as api, FakeRG15() as gauge:
        api.body = json.dumps(open_meteo).encode()
        gauge.set_reading(0, 0, 0, 0)
        sources = [
            SENSORS,
            {"type": "open_meteo", "name": "model", "url": api.url, "poll_interval": 60, "max_age": 10**9},
            {"type": "rg15", "name": "gauge", "port": gauge.port, "poll_interval": 0.5},
        ]
        with RunningWeather(tmp_path, mosquitto, sources=sources, limits=LIMITS, safe_delay=0, publish_interval=1):
            watcher.wait_payload("obsy/weather/availability", b"online")  # subscribed by then
            watcher.publish(ZIGBEE, json.dumps({"temperature": 41.0, "humidity": 70}))

            def all_in(s) -> bool:
                wanted = {"cloud_cover", "rain_rate", "ambient_temperature", "wind_speed", "humidity"}
                return wanted <= set(s.readings)

            state = wait_state(watcher, all_in)
            assert state.readings["cloud_cover"].source == "model"
            assert state.readings["rain_rate"].source == "gauge" and state.readings["rain"].value is False
            assert state.readings["wind_speed"].source == "model"  # the only wind source so far
            # the freshest reading wins: the MQTT one (now) beats the model's (22:00 on a January night)
            assert state.readings["ambient_temperature"].source == "broker"
            assert state.readings["ambient_temperature"].value == pytest.approx(5.0)
            verdict = wait_verdict(watcher, lambda v: v.safe)
            count = len([m for m in watcher.on("obsy/weather/safety") if m.payload])
            watcher.wait_for(lambda _: len(watcher.on("obsy/weather/safety")) >= count + 2, timeout=5)
            republished = [m for m in watcher.on("obsy/weather/safety")][-1]
            assert json.loads(republished.payload)["since"].startswith(verdict.since.isoformat()[:19])
            assert republished.retain is False  # live delivery; the broker keeps it retained for late joiners
