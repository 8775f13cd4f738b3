"""Weather's Home Assistant entities (the runner adds the standard ones): the verdict, rain, one sensor per quantity."""

from __future__ import annotations

from obsy.homeassistant import BinarySensor, Entity, Sensor, safety_binary_sensor
from obsy.topics import Topics
from obsy_weather.quantities import QUANTITIES, Quantity


def _reading(name: str) -> str:
    """Jinja that sets ``r`` to the named reading of a WeatherState (undefined when no source gives it)."""
    return f"{{% set r = value_json.readings.{name} %}}"


def quantity_sensor(quantity: Quantity, state_topic: str) -> Sensor:
    """A reading in its canonical unit; unknown while missing or stale; its source and age as attributes."""
    return Sensor(
        quantity.name,
        quantity.label,
        state_topic=state_topic,
        value_template=_reading(quantity.name) + "{{ 'None' if r is not defined or r.stale else r.value }}",
        device_class=quantity.ha_device_class,
        unit_of_measurement=quantity.unit or None,
        # No state class for an angle: Home Assistant before measurement_angle (2024.3,
        # tested) drops the whole entity for it, and a linear mean of angles is wrong.
        state_class=None if quantity.kind == "angle" else "measurement",
        icon=quantity.ha_icon,
        json_attributes_topic=state_topic,
        json_attributes_template=_reading(quantity.name)
        + "{{ {'source': r.source, 'measured_at': r.measured_at, 'age_s': r.age_s} | tojson"
        " if r is defined else '{}' }}",
    )


def entities(topics: Topics) -> list[Entity]:
    state = topics.weather_state
    safety = topics.weather_safety
    return [
        safety_binary_sensor("safety", "Weather unsafe", safety, json_attributes_topic=safety),
        BinarySensor(
            "rain",
            "Rain",
            state_topic=state,
            value_template=_reading("rain")
            + "{{ 'None' if r is not defined or r.stale else ('ON' if r.value else 'OFF') }}",
            device_class="moisture",
        ),
        *(quantity_sensor(q, state) for q in QUANTITIES.values() if not q.is_flag),
    ]
