"""The reference tables in docs/ are checked against the code, so that neither drifts alone.

- docs/topics.md's per-service table lists every topic ``obsy.topics.Topics`` names, and names
  no topic the code does not build.
- docs/mcp.md's states table lists every MCP state and no other.
- docs/mcp.md's command table lists every command of ``obsy_mcp.commands.COMMANDS`` and no other.
- docs/mcp.md's event entity table gives every MCP event entity's topic and event types.
- docs/topics.md's Home Assistant table lists every entity the services declare (their ``ha.py``
  and the standard ones), with its kind, name and topics, and no other; a service page's entity
  table (docs/clouddetect.md) lists that service's entities.
"""

from __future__ import annotations

import re
from pathlib import Path

from obsy.bus import Bus
from obsy.config import SERVICE_NAMES, load_config
from obsy.homeassistant import Entity, Event, disk_free_sensor, standard_entities
from obsy.services import registered_services
from obsy.topics import Topics
from obsy_mcp.commands import COMMANDS
from obsy_mcp.statemachine import State

REPO = Path(__file__).resolve().parents[2]
DOCS = REPO / "docs"
PREFIX = "obsy"


def section(markdown: str, heading: str) -> str:
    """The text under ``heading`` (a ``## `` line) up to the next heading of that level."""
    match = re.search(rf"^## {re.escape(heading)}\n(.*?)(?=^## |\Z)", markdown, re.S | re.M)
    assert match, f"no section '## {heading}'"
    return match.group(1)


def first_column(table_text: str) -> list[str]:
    """The code spans in the first column of every table row (header and rule rows skipped)."""
    cells = [line.split("|")[1].strip() for line in table_text.splitlines() if line.startswith("|")]
    return [cell.strip("`") for cell in cells if cell.startswith("`")]


def named_topics() -> set[str]:
    """Every topic Topics has a name for (its properties), written as the docs write them."""
    topics = Topics(PREFIX)
    names = [name for name, value in vars(Topics).items() if isinstance(value, property)]
    assert len(names) > 20, names  # the properties were found
    return {"<p>" + getattr(topics, name).removeprefix(PREFIX) for name in names}


def conventional_topics() -> set[str]:
    """The per-service conventions (availability, health, events, state) for every service."""
    topics = Topics(PREFIX)
    built = set()
    for service in (*SERVICE_NAMES, "web/ingestor"):
        for topic in (topics.availability(service), topics.health(service), topics.events(service)):
            built.add("<p>" + topic.removeprefix(PREFIX))
    return built


def test_the_topic_table_lists_every_named_topic_and_only_real_ones() -> None:
    documented = set(first_column(section((DOCS / "topics.md").read_text(), "Per service")))
    named = named_topics()
    assert not named - documented, f"topics the code names but docs/topics.md does not list: {named - documented}"
    unknown = documented - named - conventional_topics()
    assert not unknown, f"docs/topics.md lists topics no code builds: {unknown}"


def test_the_states_table_lists_every_mcp_state_and_no_other() -> None:
    text = section((DOCS / "mcp.md").read_text(), "States")
    documented: set[str] = set()
    for cell in first_column(text):
        documented.update(part.strip(" `") for part in cell.split("/"))  # `opening` / `closing`
    states = {state.value for state in State}
    assert documented == states, f"missing: {states - documented}, not states: {documented - states}"


def test_the_command_table_lists_every_mcp_command_and_no_other() -> None:
    """Rows name a topic (``<p>/mcp/<thing>/set``) or continue the one above; payloads are code spans."""
    text = section((DOCS / "mcp.md").read_text(), "Commands and answers")
    documented: set[tuple[str, str]] = set()
    thing: str | None = None
    for line in text.splitlines():
        if not line.startswith("|") or line.startswith("|---"):
            continue
        topic, payload = (cell.strip() for cell in line.split("|")[1:3])
        if topic:
            local = re.fullmatch(r"`<p>/mcp/(\w+)/set`", topic)  # the central site's remote/... rows are not the table
            thing = local.group(1) if local else None
        if thing is not None:
            documented.update((thing, value) for value in re.findall(r"`([^`]+)`", payload))
    commands = set(COMMANDS)
    assert documented == commands, f"missing: {commands - documented}, not commands: {documented - commands}"


def entity_row(service: str, entity: Entity) -> str:
    """One row of docs/topics.md's Home Assistant entity table, as the code declares the entity."""

    def topic(value: str | None) -> str:
        return f"`<p>{value.removeprefix(PREFIX)}`" if value else ""

    read = getattr(entity, "state_topic", None) or getattr(entity, "image_topic", None)
    name = (entity.name or "").replace(STANDARD, "*Service*")
    cells = [
        service,
        entity.component,
        f"`{entity.object_id}`",
        name,
        topic(read),
        topic(getattr(entity, "command_topic", None)),
    ]
    return "| " + " | ".join(cells) + " |"


STANDARD = "<service>"  # the standard entities are documented once, for a service of this name


def declared_entities() -> dict[str, list[Entity]]:
    """Each service's own Home Assistant entities (its ``ha.py``) under the example config, by service name."""
    config = load_config(REPO / "config" / "obsy.example.yaml", env={})
    declared = {}
    for entry in sorted(registered_services(), key=lambda e: e.name):
        cls = entry.load()
        declared[cls.name] = cls(config, Bus(config.broker, cls.name)).ha_entities()
    return declared


def home_assistant_rows() -> list[str]:
    """The table's rows: the entities every service gets, then each service's own (the example config's)."""
    topics = Topics(PREFIX)
    rows = [entity_row("every service", e) for e in standard_entities(STANDARD, topics)]
    rows.append(entity_row("every service", disk_free_sensor(STANDARD, topics)))
    for service, entities in declared_entities().items():
        rows += [entity_row(service, e) for e in entities]
    return rows


def test_the_home_assistant_table_lists_every_entity_as_the_code_declares_it() -> None:
    text = section((DOCS / "topics.md").read_text(), "Home Assistant")
    documented = [line for line in text.splitlines() if line.startswith("| ") and not line.startswith("| service ")]
    expected = home_assistant_rows()
    missing = "\n".join(row for row in expected if row not in documented)
    assert not missing, f"docs/topics.md's Home Assistant table lacks (or has other words for) these rows:\n{missing}"
    stale = "\n".join(row for row in documented if row not in expected)
    assert not stale, f"docs/topics.md's Home Assistant table has rows no service declares:\n{stale}"


def test_the_mcp_event_entity_table_lists_every_event_entity_with_its_topic_and_types() -> None:
    from obsy_mcp import ha

    text = section((DOCS / "mcp.md").read_text(), "Home Assistant")
    documented: dict[str, tuple[str, set[str]]] = {}
    for line in text.splitlines():
        if not line.startswith("| ") or line.startswith("| entity "):
            continue
        name, topic, types = (cell.strip() for cell in line.split("|")[1:4])
        documented[name] = (topic, set(re.findall(r"`([^`]+)`", types)))
    declared = {
        e.name: (f"`<p>{e.state_topic.removeprefix(PREFIX)}`", set(e.event_types))
        for e in ha.entities(Topics(PREFIX))
        if isinstance(e, Event)
    }
    assert documented == declared


def test_entities_named_in_a_services_page_are_the_ones_it_declares() -> None:
    """Rows like ``| `sensor…_cloud_cover` (All-sky cloud cover) | ... |`` in a service's page (docs/<service>.md)."""
    checked = 0
    for service, entities in declared_entities().items():
        page = DOCS / f"{service}.md"
        text = page.read_text() if page.exists() else ""
        if "## Home Assistant" not in text:
            continue
        rows = set(re.findall(r"^\| `(\w+)…_(\w+)` \(([^)]+)\) \|", section(text, "Home Assistant"), re.M))
        if rows:
            declared = {(e.component, e.object_id, e.name) for e in entities}
            assert rows == declared, f"{page.name} documents {sorted(rows - declared)}, lacks {sorted(declared - rows)}"
            checked += 1
    assert checked, "no service page has an entity table: the pattern no longer matches"
