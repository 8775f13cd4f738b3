"""The allsky service's Home Assistant entities pass the discovery lint."""

from __future__ import annotations

from obsy.homeassistant import Node, lint_entities
from obsy.messages import AllskyDarksCommand
from obsy.topics import Topics
from obsy_allsky.service import AllskyService


class _Bus:
    topics = Topics("obsy")


def test_home_assistant_entities_are_valid():
    service = AllskyService.__new__(AllskyService)
    service.topics = _Bus.topics
    entities = service.ha_entities()
    assert lint_entities(entities, Node("obsy", "allsky", "Test")) == []
    by_id = {e.object_id: e for e in entities}
    assert by_id["sky"].component == "image" and by_id["sky"].image_topic == "obsy/allsky/image"
    assert {"stars", "sqm", "exposure", "gain"} <= set(by_id)
    assert by_id["exposure"].unit_of_measurement == "s"
    assert set(by_id["mode"].options) == {"day", "twilight", "night", "moon"}
    darks = by_id["capture_darks"]
    assert darks.component == "button" and darks.command_topic == "obsy/allsky/darks/set"
    assert AllskyDarksCommand.model_validate_json(darks.payload_press).exposures == []  # a command the service reads
