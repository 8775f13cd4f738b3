"""Which service owns which section's schema: the ``obsy.config_sections`` entry-point group.

A service that owns its section declares it in its ``pyproject.toml``::

    [project.entry-points."obsy.config_sections"]
    alpaca = "obsy_alpaca.config:AlpacaConfig"

The loader then validates ``alpaca:`` with that class wherever the service is installed. A site
keeps one configuration file for all its services, but each service's image installs only
obsy-core and its own package: there a section of a service that is not installed is kept as
written (its own service validates it), and reading a setting from it raises a
:class:`~obsy.config.base.ConfigError` that names the package it needs.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Mapping
from importlib.metadata import entry_points
from typing import Annotated, Any

from pydantic import Field, PlainSerializer, PlainValidator

from obsy.config.base import SERVICE_NAMES, ConfigError, ServiceSection

ENTRY_POINT_GROUP = "obsy.config_sections"

#: Every OBSY service's section, whose schema lives in that service's package, and that package's distribution.
SERVICE_OWNED_SECTIONS = {name: f"obsy-{name}" for name in SERVICE_NAMES}


class MissingSection:
    """The section of a service whose package is not installed here: the settings as written, unvalidated."""

    def __init__(self, name: str, package: str, raw: Mapping[str, Any]) -> None:
        self.name = name
        self.package = package
        self.raw = dict(raw)

    def __getattr__(self, attribute: str) -> Any:
        if attribute.startswith("__"):  # copy, pickle and friends probe for these
            raise AttributeError(attribute)
        problem = f"the '{self.name}' section needs package {self.package}, which is not installed here"
        if importlib.util.find_spec(self.package.replace("-", "_")) is not None:
            # A development install older than the entry point: its metadata does not list the section yet.
            problem = (
                f"the '{self.name}' section's schema is not registered: {self.package} is importable but its "
                f"installed metadata lacks the {ENTRY_POINT_GROUP!r} entry point (reinstall it)"
            )
        raise ConfigError([f"{problem} (reading {self.name}.{attribute})"])

    def __eq__(self, other: object) -> bool:
        return isinstance(other, MissingSection) and (self.name, self.raw) == (other.name, other.raw)

    def __hash__(self) -> int:
        return hash(self.name)

    def __repr__(self) -> str:
        return f"MissingSection({self.name!r}, needs {self.package})"


def missing_section_field(name: str, package: str) -> tuple[Any, Any]:
    """A model field that keeps the section as written (a mapping) while its service is not installed."""

    def keep(value: Any) -> MissingSection:
        if isinstance(value, MissingSection):
            return value
        if value is None:
            value = {}
        if not isinstance(value, Mapping):
            raise ValueError(f"the {name} section must be a mapping of settings, not {type(value).__name__}")
        return MissingSection(name, package, value)

    annotation = Annotated[Any, PlainValidator(keep), PlainSerializer(lambda section: section.raw)]
    return annotation, Field(default_factory=lambda: MissingSection(name, package, {}))


def installed_section_schemas() -> dict[str, type[ServiceSection]]:
    """The section schemas the installed services register, by section name."""
    schemas: dict[str, type[ServiceSection]] = {}
    for entry in entry_points(group=ENTRY_POINT_GROUP):
        try:
            schema = entry.load()
        except Exception as exc:
            raise ImportError(
                f"the config section {entry.name!r} ({entry.value}) of the entry-point group "
                f"{ENTRY_POINT_GROUP!r} cannot be loaded: {exc}"
            ) from exc
        if not (isinstance(schema, type) and issubclass(schema, ServiceSection)):
            raise TypeError(f"the config section {entry.name!r} ({entry.value}) is not a ServiceSection subclass")
        if entry.name in schemas and schemas[entry.name] is not schema:
            raise TypeError(f"two installed packages register the config section {entry.name!r}")
        schemas[entry.name] = schema
    return schemas


def section_fields(core_fields: Mapping[str, Any]) -> dict[str, tuple[Any, Any]]:
    """The fields the configuration model gains: each registered schema, else a kept-as-written section."""
    fields: dict[str, tuple[Any, Any]] = {}
    for name, schema in installed_section_schemas().items():
        if name in core_fields:
            raise TypeError(f"the config section {name!r} registered by a service is already a core section")
        fields[name] = (schema, Field(default_factory=schema))
    for name, package in SERVICE_OWNED_SECTIONS.items():
        if name not in fields:
            fields[name] = missing_section_field(name, package)
    return fields
