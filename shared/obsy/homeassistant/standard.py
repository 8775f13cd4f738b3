"""The entities every service gets from the runner, and the kinds several services declare alike."""

from __future__ import annotations

from collections.abc import Iterable

from obsy.homeassistant.entities import BinarySensor, Entity, Sensor
from obsy.homeassistant.templates import json_attributes, json_value
from obsy.topics import Topics

SERVICE_LABELS = {
    "weather": "Weather",
    "clouddetect": "Cloud detection",
    "allsky": "All-sky camera",
    "scheduler": "Scheduler",
    "mcp": "MCP",
    "web": "Web",
    "imaging": "Imaging",
}


def service_label(service: str) -> str:
    """How entity names refer to a service ("MCP service", "All-sky camera health").

    All services of one observatory share one Home Assistant device, so names start with the service.
    """
    return SERVICE_LABELS.get(service, service.replace("_", " ").capitalize())


def connectivity_binary_sensor(service: str, topics: Topics) -> BinarySensor:
    """ON while the service is ``online``; OFF when ``offline`` (Last Will) or ``stopped``.

    It is not subject to availability itself, so Home Assistant shows a dead service as
    *off* rather than *unavailable*.
    """
    return BinarySensor(
        "connectivity",
        f"{service_label(service)} service",
        state_topic=topics.availability(service),
        value_template="{{ 'ON' if value == 'online' else 'OFF' }}",
        device_class="connectivity",
        entity_category="diagnostic",
        availability=False,
    )


def safety_binary_sensor(
    object_id: str,
    name: str,
    state_topic: str,
    *,
    safe_expression: str = "value_json.safe",
    json_attributes_topic: str | None = None,
) -> BinarySensor:
    """A binary_sensor of device class ``safety``: **ON means unsafe**, OFF means safe.

    That is Home Assistant's convention for the class, the opposite of OBSY's ``safe``
    flag, hence the inverting template. ``safe_expression`` is a Jinja expression true
    when safe (default: the ``safe`` field of a :class:`~obsy.messages.SafetyVerdict`).
    """
    return BinarySensor(
        object_id,
        name,
        state_topic=state_topic,
        value_template=f"{{{{ 'OFF' if {safe_expression} else 'ON' }}}}",
        device_class="safety",
        json_attributes_topic=json_attributes_topic,
    )


def standard_entities(service: str, topics: Topics | None = None) -> list[Entity]:
    """The entities every service gets: connectivity, health status, version, last heartbeat, invalid messages."""
    topics = topics or Topics()
    health = topics.health(service)
    label = service_label(service)
    return [
        connectivity_binary_sensor(service, topics),
        Sensor(
            "health",
            f"{label} health",
            state_topic=health,
            value_template=json_value("status"),
            device_class="enum",
            options=("ok", "degraded", "failing"),
            json_attributes_topic=health,
            # Only the fields that rarely change: every attribute change is a new history row.
            json_attributes_template=json_attributes("version", "host", "pid"),
            icon="mdi:heart-pulse",
            entity_category="diagnostic",
        ),
        # The version this service runs (the device's sw_version is obsy-core's, shared by all services).
        Sensor(
            "version",
            f"{label} version",
            state_topic=health,
            value_template=json_value("version"),
            icon="mdi:tag-outline",
            entity_category="diagnostic",
        ),
        # Readable while the service is down: the time of its last sign of life.
        Sensor(
            "last_heartbeat",
            f"{label} last heartbeat",
            state_topic=health,
            value_template=json_value("timestamp"),
            device_class="timestamp",
            entity_category="diagnostic",
            availability=False,
            enabled_by_default=False,
        ),
        Sensor(
            "invalid_messages",
            f"{label} invalid messages",
            state_topic=health,
            value_template=json_value("invalid_messages"),
            state_class="total_increasing",
            icon="mdi:message-alert-outline",
            entity_category="diagnostic",
        ),
    ]


def disk_free_sensor(service: str, topics: Topics) -> Sensor:
    """The least free space of a service's watched folders (``obsy.diskspace``), from its health; each folder's
    figures and level as attributes."""
    health = topics.health(service)
    return Sensor(
        "disk_free",
        f"{service_label(service)} disk free",
        state_topic=health,
        value_template=json_value("details.disk.free_gb"),
        device_class="data_size",
        unit_of_measurement="GB",
        state_class="measurement",
        icon="mdi:harddisk",
        json_attributes_topic=health,
        json_attributes_template=json_attributes("level", "paths", of="details.disk"),
    )


def service_entities(service: str, topics: Topics, own: Iterable[Entity], *, watches_disk: bool) -> list[Entity]:
    """Everything a service announces: the standard entities, its own (its ``ha.py``), and the free space of
    its folders when it watches any (``Service.disk_paths``)."""
    entities = [*standard_entities(service, topics), *own]
    if watches_disk:
        entities.append(disk_free_sensor(service, topics))
    return entities
