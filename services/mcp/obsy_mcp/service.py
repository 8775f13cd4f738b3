"""The mcp service process.

So far it runs under the common runner (availability, health, discovery of its
standard entities); its own work is added by the mcp issue.
"""

from __future__ import annotations

from obsy.runner import Service, run_service


class McpService(Service):
    name = "mcp"


def main() -> int:
    return run_service(McpService)
