"""The alpaca section of the configuration (registered in the ``obsy.config_sections`` entry-point group)."""

from __future__ import annotations

from pydantic import (
    Field,
)

from obsy.config.base import ServiceSection


class AlpacaConfig(ServiceSection):
    """The ASCOM Alpaca SafetyMonitor and ObservingConditions devices (docs/alpaca.md).

    Off by default: when on, it answers anyone on the network (Alpaca has no login) and
    replies to discovery broadcasts.
    """

    enabled: bool = False
    host: str = Field(default="0.0.0.0", description="address the Alpaca HTTP API listens on")
    port: int = Field(default=11111, ge=0, le=65535, description="Alpaca HTTP port (11111: the usual; 0: any free)")
    discovery: bool = Field(default=True, description="answer Alpaca discovery broadcasts (UDP)")
    discovery_port: int = Field(default=32227, ge=0, le=65535, description="the Alpaca discovery port (32227)")
    max_verdict_age: float = Field(
        default=90.0,
        gt=0,
        description="seconds after which the weather verdict is stale and IsSafe false "
        "(the weather service republishes every weather.publish_interval seconds)",
    )
    location: str = Field(default="", max_length=120, description="the Location the management API reports")
