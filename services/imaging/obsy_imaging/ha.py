"""Imaging's Home Assistant entities (the runner adds the standard ones)."""

from __future__ import annotations

from obsy.homeassistant import Entity, Image, Sensor, json_attributes, json_value
from obsy.topics import Topics


def entities(topics: Topics, *, live_stack: bool) -> list[Entity]:
    """The night's frames and queues; the live stack's picture and depth when it runs (``live_stack``)."""
    state = topics.imaging_state

    def count(object_id: str, name: str, field: str, icon: str, **options: str) -> Sensor:
        """A count out of the imaging state (ImagingState)."""
        return Sensor(
            object_id,
            name,
            state_topic=state,
            value_template=json_value(field),
            state_class="measurement",
            icon=icon,
            **options,
        )

    found: list[Entity] = [
        count(
            "frames_tonight",
            "Frames tonight",
            "frames_tonight",
            "mdi:image-multiple",
            json_attributes_topic=state,
            json_attributes_template=json_attributes(
                "night", lights="lights_tonight", quarantined="quarantined_tonight"
            ),
        ),
        Sensor(
            "accepted_fraction",
            "Lights accepted tonight",
            state_topic=state,
            value_template=(
                "{{ (100 * value_json.accepted_tonight / value_json.lights_tonight) | round(0)"
                " if value_json.lights_tonight else 'None' }}"
            ),
            unit_of_measurement="%",
            state_class="measurement",
            icon="mdi:check-decagram",
        ),
        count("queue", "Frames waiting", "queue", "mdi:tray-full"),
        count(
            "calibration_queue",
            "Lights waiting for calibration",
            "calibration_queue",
            "mdi:timer-sand",
            json_attributes_topic=state,
            json_attributes_template=json_attributes("waiting_for"),
        ),
        count("quarantined_tonight", "Frames quarantined tonight", "quarantined_tonight", "mdi:file-alert-outline"),
    ]
    if live_stack:
        live = topics.imaging_live_stack_state
        found += [
            Image("live_stack", "Live stack", image_topic=topics.imaging_live_stack_image, content_type="image/jpeg"),
            Sensor(
                "live_stack_frames",
                "Live stack frames",
                state_topic=live,
                value_template=json_value("frames"),
                state_class="measurement",
                icon="mdi:layers-triple",
                json_attributes_topic=live,
                json_attributes_template=json_attributes("target", "filter", "night", "integration_s", "left_out"),
            ),
        ]
    return found
