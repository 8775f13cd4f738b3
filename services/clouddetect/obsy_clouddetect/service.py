"""The clouddetect service process.

So far it runs under the common runner (availability, health, discovery of its
standard entities); its own work is added by the clouddetect issue.
"""

from __future__ import annotations

from obsy.runner import Service, run_service


class CloudDetectService(Service):
    name = "clouddetect"


def main() -> int:
    return run_service(CloudDetectService)
