"""Which OBSY services exist, and which are installed here: the ``obsy.services`` entry-point group.

Every service registers its :class:`~obsy.runner.Service` class in its ``pyproject.toml``, next to
its console script (named ``obsy-<name>``, the one command-line convention: ``obsy-<name> run``,
``healthcheck``, ``check-config``)::

    [project.scripts]
    obsy-alpaca = "obsy_alpaca.service:main"

    [project.entry-points."obsy.services"]
    alpaca = "obsy_alpaca.service:AlpacaService"

:func:`registered_services` reads that group: the services installed in this environment, in a
fixed order (the order of :data:`~obsy.config.base.SERVICE_NAMES`, then any other registered
service, a plug-in, by name). The local launcher (``obsy-local``) starts what it lists, and the
tests that must see every service (Home Assistant discovery, the docs' tables, the command line)
walk it. Reading the group imports nothing: :meth:`RegisteredService.load` imports the class.

Two lists, on purpose. ``SERVICE_NAMES`` in ``obsy.config.base`` is the catalogue of the whole
system, written down in the core, because a service's image holds obsy-core and that one service
only (services/Dockerfile), yet every process must know every OBSY service: the configuration
keeps the sections of services not installed here (``obsy.config.registry``), the topic tree
tells which service a topic belongs to, the web's status page lists every service, and the MCP
supervises the others from a container in which none of them is installed (so its default
``supervision.services`` is the catalogue, ``obsy_mcp.config.supervised_by_default``, not this
registry).
The registry is what is installed here. In the development environment, where everything is
installed, both must name the same services; tests/unit/test_services_registry.py checks it.

What a service needs (INDI, a database) is not declared again here: its package's dependencies
say it (``obsy-core[indi]``, a database driver), and tests/unit/test_compose.py holds each image's
build arguments (the INDI extra, the system libraries) to them. What a new service touches:
docs/architecture.md, "Adding a service".
"""

from __future__ import annotations

import re
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from importlib.metadata import EntryPoint, entry_points
from typing import TYPE_CHECKING

from obsy.config.base import SERVICE_NAMES

if TYPE_CHECKING:
    from obsy.runner import Service

ENTRY_POINT_GROUP = "obsy.services"
#: A service's name: what its topics, its config section and its console script (``obsy-<name>``) use.
NAME_PATTERN = re.compile(r"^[a-z][a-z0-9_]{0,31}$")


class ServiceRegistryError(Exception):
    """A registered service is unusable; the message names the entry point and what is wrong."""


@dataclass(frozen=True)
class RegisteredService:
    """One entry of the ``obsy.services`` group, as installed here."""

    name: str
    entry_point: EntryPoint
    #: The distribution that registers it (``obsy-weather``).
    distribution: str
    #: Its console script, ``obsy-<name>``: the name and the entry point that runs it.
    script: str
    script_entry: EntryPoint

    def load(self) -> type[Service]:
        """Import the service's class; a clear :class:`ServiceRegistryError` when that fails or it is no service."""
        from obsy.runner import Service

        where = f"the service {self.name!r} ({self.entry_point.value}, from {self.distribution})"
        try:
            cls = self.entry_point.load()
        except Exception as exc:
            raise ServiceRegistryError(f"{where} cannot be loaded: {type(exc).__name__}: {exc}") from exc
        if not (isinstance(cls, type) and issubclass(cls, Service)):
            raise ServiceRegistryError(f"{where} is not a subclass of obsy.runner.Service")
        if cls.name != self.name:
            raise ServiceRegistryError(f"{where} calls itself {cls.name!r}: its class attribute 'name' must match")
        return cls

    def main_argv(self, *args: str) -> list[str]:
        """The command line that runs the service's console script with this Python (``python -m obsy.services``)."""
        return [sys.executable, "-m", "obsy.services", self.name, *args]


def _entry(entry: EntryPoint) -> RegisteredService:
    where = f"the entry point {entry.name} = {entry.value!r} of the group {ENTRY_POINT_GROUP!r}"
    if not NAME_PATTERN.match(entry.name):
        raise ServiceRegistryError(f"{where}: {entry.name!r} is no service name (lower case, digits, '_')")
    if entry.dist is None:
        raise ServiceRegistryError(f"{where} belongs to no installed distribution")
    distribution = entry.dist.name
    script = f"obsy-{entry.name}"
    scripts = {e.name: e for e in entry.dist.entry_points if e.group == "console_scripts"}
    if script not in scripts:
        raise ServiceRegistryError(
            f"{where}: {distribution} declares no console script {script!r} "
            f'([project.scripts] {script} = "<package>.service:main"; reinstall it after adding one)'
        )
    return RegisteredService(entry.name, entry, distribution, script, scripts[script])


def registered_services() -> list[RegisteredService]:
    """The services installed here: OBSY's own in the catalogue's order, then plug-ins by name.

    Raises :class:`ServiceRegistryError` for a malformed entry, a service registered twice, or one
    without its ``obsy-<name>`` console script. Imports no service.
    """
    found: dict[str, RegisteredService] = {}
    for entry in entry_points(group=ENTRY_POINT_GROUP):
        service = _entry(entry)
        other = found.get(service.name)
        if other is not None and other.entry_point.value != entry.value:
            raise ServiceRegistryError(
                f"the service {service.name!r} is registered twice: by {other.distribution} "
                f"({other.entry_point.value}) and by {service.distribution} ({entry.value})"
            )
        found[service.name] = service
    order = {name: index for index, name in enumerate(SERVICE_NAMES)}
    return sorted(found.values(), key=lambda s: (order.get(s.name, len(order)), s.name))


def registered(name: str) -> RegisteredService:
    """One installed service by name; :class:`ServiceRegistryError` naming the installed ones if absent."""
    services = registered_services()
    for service in services:
        if service.name == name:
            return service
    installed = ", ".join(s.name for s in services) or "none"
    raise ServiceRegistryError(f"no service {name!r} is installed here (installed: {installed})")


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m obsy.services <name> [arguments]``: run the console script ``obsy-<name>`` of an installed service.

    What the local launcher starts: it needs only the registry, not where the scripts were installed.
    """
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0].startswith("-"):
        names = ", ".join(s.name for s in registered_services()) or "none installed"
        print(f"usage: python -m obsy.services <service> [command] [options]  (services: {names})", file=sys.stderr)
        return 2
    try:
        service = registered(args[0])
        entry = service.script_entry.load()
    except (ServiceRegistryError, ImportError, AttributeError) as exc:
        print(f"obsy.services: {exc}", file=sys.stderr)
        return 2
    sys.argv = [service.script, *args[1:]]
    result = entry()
    return result if isinstance(result, int) else 0


if __name__ == "__main__":
    sys.exit(main())
