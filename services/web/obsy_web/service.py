"""The web service process.

So far it runs under the common runner (availability, health, discovery of its
standard entities); its own work is added by the web issue.
"""

from __future__ import annotations

from obsy.runner import Service, run_service


class WebService(Service):
    name = "web"


def main() -> int:
    return run_service(WebService)
