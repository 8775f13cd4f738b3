"""Cloud detection's Home Assistant entities (the runner adds the standard ones)."""

from __future__ import annotations

from obsy.homeassistant import BinarySensor, Entity, Sensor, json_attributes, json_value, json_value_or_unknown
from obsy.topics import Topics


def entities(topics: Topics) -> list[Entity]:
    state = topics.clouddetect_state
    return [
        Sensor(
            "cloud_cover",
            "All-sky cloud cover",  # distinct from a weather station's "Cloud cover" on the device
            state_topic=state,
            value_template=json_value_or_unknown("cloud_cover"),
            unit_of_measurement="%",
            state_class="measurement",
            icon="mdi:weather-cloudy",
            json_attributes_topic=state,
            json_attributes_template=json_attributes("transmission", "stars_expected", "stars_seen", "frame_id"),
        ),
        BinarySensor(
            "clear_sky",
            "Clear sky",
            state_topic=state,
            # Unknown is reported as unknown, never as clear.
            value_template=(
                "{{ 'ON' if value_json.clear is sameas true else ('OFF' if value_json.clear is sameas false"
                " else 'None') }}"
            ),
            icon="mdi:weather-night",
        ),
        Sensor(
            "sky_label",
            "Sky condition",
            state_topic=state,
            value_template=json_value("label"),
            icon="mdi:weather-partly-cloudy",
            json_attributes_topic=state,
            json_attributes_template=json_attributes("confidence", "methods", "reason"),
        ),
    ]
