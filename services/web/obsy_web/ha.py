"""The web service's Home Assistant entities (the runner adds the standard ones)."""

from __future__ import annotations

from obsy.homeassistant import Entity, Sensor
from obsy.topics import Topics


def entities(topics: Topics) -> list[Entity]:
    """The last night summed up (``web/night_summary``): its integration, with the other figures as attributes."""
    summary = topics.web_night_summary
    return [
        Sensor(
            "last_night_integration",
            "Last night integration",
            state_topic=summary,
            value_template="{{ (value_json.integration_s / 3600) | round(2) }}",
            device_class="duration",
            unit_of_measurement="h",
            icon="mdi:telescope",
            json_attributes_topic=summary,
            json_attributes_template=(
                "{{ {'night': value_json.night, 'roof_open_h': (value_json.roof_open_s / 3600) | round(2),"
                " 'closed_for': value_json.closed_for, 'lights_taken': value_json.lights_taken,"
                " 'lights_accepted': value_json.lights_accepted, 'lights_rejected': value_json.lights_rejected,"
                " 'stacks': value_json.stacks, 'photometry_reports': value_json.photometry_reports,"
                " 'meteors': value_json.meteors, 'link': value_json.link} | tojson }}"
            ),
        ),
    ]
