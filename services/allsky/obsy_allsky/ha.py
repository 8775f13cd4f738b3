"""The all-sky camera's Home Assistant entities (the runner adds the standard ones)."""

from __future__ import annotations

from obsy.homeassistant import Button, Entity, Event, Image, Sensor, ha_press, json_value_or_unknown
from obsy.topics import Topics


def entities(topics: Topics) -> list[Entity]:
    state = topics.allsky_state

    def reading(object_id: str, name: str, field: str, **options: str) -> Sensor:
        """A figure of the latest frame (AllskyState); unknown before the first frame."""
        return Sensor(
            object_id,
            name,
            state_topic=state,
            value_template=json_value_or_unknown(field),
            state_class="measurement",
            **options,
        )

    return [
        Image("sky", "All-sky image", image_topic=topics.allsky_image, content_type="image/jpeg"),
        reading("stars", "Stars", "stars", icon="mdi:star-four-points"),
        reading("sqm", "All-sky sky brightness", "sqm", unit_of_measurement="mag/arcsec²", icon="mdi:brightness-4"),
        reading("exposure", "Exposure", "exposure_s", device_class="duration", unit_of_measurement="s"),
        reading("gain", "Gain", "gain", icon="mdi:tune-vertical"),
        Sensor(
            "mode",
            "Exposure mode",
            state_topic=state,
            value_template=json_value_or_unknown("mode"),
            device_class="enum",
            options=("day", "twilight", "night", "moon"),
            icon="mdi:theme-light-dark",
        ),
        # One event per meteor or satellite track (an AllskyStreak; its kind is the event type).
        Event(
            "streak",
            "Meteor or satellite",
            state_topic=topics.allsky_streaks,
            event_types=("meteor", "satellite"),
            value_template='{{ {"event_type": value_json.kind} | to_json }}',
            json_attributes_topic=topics.allsky_streaks,
            icon="mdi:meteor",
        ),
        # Cap the lens first: the masters of the current bracket, gain and temperature.
        Button(
            "capture_darks",
            "Capture master darks",
            command_topic=topics.allsky_darks_command,
            payload_press=ha_press(),
            entity_category="config",
            icon="mdi:camera-iris",
        ),
    ]
