"""The Jinja templates and fixed payloads OBSY's entities share.

Home Assistant renders ``value_template`` with ``value`` (the raw payload) and ``value_json``
(the payload parsed). A sensor whose template renders the string ``None`` shows *unknown*:
OBSY's state messages carry ``null`` for a figure it does not have (no frame yet, a stale
reading), and :func:`json_value_or_unknown` turns that into unknown rather than a zero.
"""

from __future__ import annotations

import json

#: Maps the three availability values (``online``/``offline``/``stopped``) to the two Home Assistant understands.
AVAILABILITY_TEMPLATE = "{{ 'online' if value == 'online' else 'offline' }}"

#: The origin every command from Home Assistant carries (a :class:`~obsy.messages.CommandOrigin`).
HA_ORIGIN = {"kind": "home_assistant"}
#: ``command_template`` of an entity whose value Home Assistant fills in (a select's option).
HA_COMMAND_TEMPLATE = '{"value": {{ value | tojson }}, "origin": {"kind": "home_assistant"}}'


def ha_command(value: str) -> str:
    """A fixed command payload that says it came from Home Assistant (a cover's ``payload_open``...)."""
    return json.dumps({"value": value, "origin": HA_ORIGIN}, separators=(",", ":"))


def ha_press() -> str:
    """The payload of a button whose command needs no value, only its origin."""
    return json.dumps({"origin": HA_ORIGIN})


def json_value(path: str) -> str:
    """``value_template`` reading one field (``frames``, ``details.disk.free_gb``) of a JSON state."""
    return f"{{{{ value_json.{path} }}}}"


def json_value_or_unknown(path: str) -> str:
    """Like :func:`json_value`, but a ``null`` field shows as unknown in Home Assistant, not as ``None``/0."""
    return f"{{{{ value_json.{path} if value_json.{path} is not none else 'None' }}}}"


def json_attributes(*fields: str, of: str = "", **renamed: str) -> str:
    """``json_attributes_template`` picking a few fields of a JSON state as the entity's attributes.

    ``fields`` keep their names; ``renamed`` maps an attribute name to the field it reads
    (``lights="lights_tonight"``), after the plain ones. ``of`` reads them from a nested object
    (``of="details.disk"``). Only stable fields belong here: each change of an attribute is a
    new row in Home Assistant's history.
    """
    base = f"value_json.{of}." if of else "value_json."
    pairs = [(name, name) for name in fields] + list(renamed.items())
    body = ", ".join(f"'{name}': {base}{field}" for name, field in pairs)
    return f"{{{{ {{{body}}} | tojson }}}}"
