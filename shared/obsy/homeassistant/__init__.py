"""Home Assistant MQTT discovery for every OBSY service.

Design
------
Every entity gets its own discovery topic,
``<discovery_prefix>/<component>/<node_id>/<object_id>/config``: this form works on every
Home Assistant version and lets one entity be removed (an empty retained config) without
touching the others. ``node_id`` is ``obsy_<slug of broker.prefix>_<service>``, so two
observatories with different prefixes on one broker never share a topic, a ``unique_id``
(``<node_id>_<object_id>``) or an entity id (``default_entity_id``,
``<component>.<unique_id>``; it replaced the ``object_id`` option, deprecated in Home
Assistant 2025.10 and gone in 2026.4; older versions ignore the key).

All services of one observatory share one Home Assistant device (identifiers
``obsy_<slug of prefix>``, named after ``site.name``); entity names therefore start with
the service ("Weather service", "MCP invalid messages").

Availability is a list: the service's ``<prefix>/<service>/availability`` and, when given,
an observatory-wide topic, with ``availability_mode: all``. The service topic carries
``online``/``offline``/``stopped``; Home Assistant ignores a payload that is neither
``payload_available`` nor ``payload_not_available``, so each entry has a
``value_template`` mapping anything but ``online`` to ``offline``.

:class:`DiscoveryPublisher` publishes every config retained (QoS 1) on each (re)connect
and again when Home Assistant announces itself ``online`` on ``homeassistant/status``
(Home Assistant drops discovery it received before it subscribed; ``<discovery_prefix>/status``
is watched too, for installations that moved the birth topic along). It also subscribes to
its own node's configs, ``<discovery_prefix>/+/<node_id>/+/config``, and clears any
retained config there that it no longer offers, so a renamed or dropped entity disappears
from Home Assistant. Configs of other nodes are never touched.

Where things are
----------------
- :mod:`.entities`: typed descriptions, one class per kind (:class:`Sensor`, :class:`BinarySensor`,
  :class:`Cover`, :class:`Select`, :class:`Button`, :class:`Event`, :class:`Image`...).
- :mod:`.templates`: the Jinja templates and command payloads entities share.
- :mod:`.standard`: the entities every service gets (connectivity, health...) and shared kinds.
- :mod:`.discovery`: ids, :class:`Node` and :func:`discovery_payload`.
- :mod:`.publisher`: :class:`DiscoveryPublisher`.
- :mod:`.lint`: the linter and its copy of Home Assistant's schema, a developer and test
  tool that no service imports.

A service declares its own entities as data in ``obsy_<service>/ha.py`` and returns them
from ``Service.ha_entities()``; the runner adds the standard ones and publishes.
"""

from obsy.homeassistant.discovery import (
    DEFAULT_MODEL,
    MANUFACTURER,
    Node,
    device_id,
    discovery_payload,
    node_id,
    obsy_version,
    slug,
)
from obsy.homeassistant.entities import (
    COMPONENTS,
    KINDS,
    BinarySensor,
    Button,
    Cover,
    Entity,
    EntityCategory,
    Event,
    Image,
    Number,
    Select,
    Sensor,
    Switch,
)
from obsy.homeassistant.publisher import DiscoveryPublisher
from obsy.homeassistant.standard import (
    SERVICE_LABELS,
    connectivity_binary_sensor,
    disk_free_sensor,
    safety_binary_sensor,
    service_entities,
    service_label,
    standard_entities,
)
from obsy.homeassistant.templates import (
    AVAILABILITY_TEMPLATE,
    HA_COMMAND_TEMPLATE,
    HA_ORIGIN,
    ha_command,
    ha_press,
    json_attributes,
    json_value,
    json_value_or_unknown,
)

__all__ = [
    "AVAILABILITY_TEMPLATE",
    "COMPONENTS",
    "DEFAULT_MODEL",
    "HA_COMMAND_TEMPLATE",
    "HA_ORIGIN",
    "KINDS",
    "MANUFACTURER",
    "SERVICE_LABELS",
    "BinarySensor",
    "Button",
    "Cover",
    "DiscoveryPublisher",
    "Entity",
    "EntityCategory",
    "Event",
    "Image",
    "Node",
    "Number",
    "Select",
    "Sensor",
    "Switch",
    "connectivity_binary_sensor",
    "device_id",
    "discovery_payload",
    "disk_free_sensor",
    "ha_command",
    "ha_press",
    "json_attributes",
    "json_value",
    "json_value_or_unknown",
    "node_id",
    "obsy_version",
    "safety_binary_sensor",
    "service_entities",
    "service_label",
    "slug",
    "standard_entities",
]
