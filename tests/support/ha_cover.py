"""What Home Assistant's MQTT cover shows for a state payload: the discovery's template, then HA's rules.

For the unit tests, which do not run Home Assistant (tests/integration/homeassistant/test_homeassistant_real.py
runs a real one): its cover logic (homeassistant/components/mqtt/cover.py) is small enough to
restate, and the part that matters is its one surprise: a ``stopped``
payload (``state_stopped``, whose default is ``stopped`` even when discovery does not name it)
becomes ``closed`` when the cover was closing or closed before, ``open`` otherwise.
"""

from __future__ import annotations

import json
from typing import Any

import jinja2


def render(template: str, payload: str) -> str:
    """A discovery value_template applied to a state payload, as Home Assistant renders it."""
    return jinja2.Environment().from_string(template).render(value=payload, value_json=json.loads(payload)).strip()


def cover_state(discovery: dict[str, Any], payload: str, previous: str | None) -> str | None:
    """The cover's state after ``payload`` arrived on its state topic; None is unknown."""
    value = render(discovery["value_template"], payload) if "value_template" in discovery else payload
    for state in ("open", "opening", "closing", "closed"):
        if value == discovery.get(f"state_{state}", state):
            return state
    if value == discovery.get("state_stopped", "stopped"):
        return "closed" if previous in ("closed", "closing") else "open"
    if value == "None":
        return None
    return previous  # Home Assistant ignores a payload it does not know (with a warning)
