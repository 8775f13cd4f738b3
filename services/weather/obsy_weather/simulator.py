"""Changing the weather of INDI's weather simulator: ``obsy-weather simulate`` and the bus command.

``indi_simulator_weather`` (device "Weather Simulator") has a number property
``WEATHER_CONTROL`` that sets what it reports: ``Weather`` (forecast), ``Temperature``
(°C), ``Wind`` and ``Gust`` (km/h) and ``Precip`` (mm/h, reported as WEATHER_RAIN_HOUR,
which the weather service turns into ``rain``). The driver applies the values on its next
update; pressing ``WEATHER_REFRESH`` makes that happen now.

Only the simulator is ever changed: a device whose driver is not ``indi_simulator_weather``,
or that has no ``WEATHER_CONTROL``, is refused with :class:`SimulationError`, so a command
meant for a demonstration can never write to a real weather station.

Clouds are not weather the weather simulator knows: the action ``clouds`` sets the sky
simulator's ``SIM_CLOUDS`` (and, for scattered clouds, ``SIM_CLOUD_SETTINGS.COVER``) on the
allsky camera (``allsky.camera.device`` on ``indi.host``/``indi.port``), which must be
``indi_obsy_allsky`` (docs/skysim.md): one command makes it cloudy without rain.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from obsy.config import IndiServerConfig, ObsyConfig
from obsy.indi import IndiClient, IndiError
from obsy.messages import SimulatedCloudKind, WeatherSimulationAction
from obsy_weather.config import IndiWeatherSourceConfig

SIMULATOR_DRIVER = "indi_simulator_weather"
CONTROL = "WEATHER_CONTROL"
REFRESH = "WEATHER_REFRESH"
#: Rain rate set by "rain": clearly wet for any rain_rate-based verdict (a rate above 0 is rain).
RAIN_RATE_MM_H = 10.0
#: Gusts set by "wind", relative to the mean wind, up to the simulator's maximum.
GUST_FACTOR = 1.3
#: The ranges of the simulator's WEATHER_CONTROL (km/h); a value outside is answered with Alert.
MAX_WIND_KMH = 100.0
MAX_GUST_KMH = 50.0
#: The sky simulator's allsky camera driver and its cloud properties (docs/skysim.md).
SKYSIM_DRIVER = "indi_obsy_allsky"
CLOUDS = "SIM_CLOUDS"
CLOUD_SETTINGS = "SIM_CLOUD_SETTINGS"


class SimulationError(Exception):
    """The weather cannot be simulated here; the message says why, for the operator."""


@dataclass(frozen=True)
class SimulatorTarget:
    """Where the simulator is: the INDI server and the device name of one weather source."""

    source: str
    host: str
    port: int
    device: str


def controls_for(action: WeatherSimulationAction, wind_speed: float | None = None) -> dict[str, float]:
    """The WEATHER_CONTROL values an action sets; values not named stay as they are."""
    if action is WeatherSimulationAction.RAIN:
        return {"Precip": RAIN_RATE_MM_H}
    if action is WeatherSimulationAction.CLEAR:
        return {"Precip": 0.0, "Wind": 0.0, "Gust": 0.0, "Weather": 0.0}
    if wind_speed is None or not 0 <= wind_speed <= MAX_WIND_KMH:
        raise SimulationError(
            f"the wind action needs a wind speed from 0 to {MAX_WIND_KMH:g} km/h (the simulator's range)"
        )
    return {"Wind": float(wind_speed), "Gust": min(round(float(wind_speed) * GUST_FACTOR, 1), MAX_GUST_KMH)}


def describe(action: WeatherSimulationAction, values: dict[str, Any]) -> str:
    if action is WeatherSimulationAction.CLOUDS:
        cover = f" {values['cover']:g} %" if values.get("cover") is not None else ""
        return f"clouds: {values['kind']}{cover}"
    if action is WeatherSimulationAction.RAIN:
        return f"rain ({values['Precip']:g} mm/h)"
    if action is WeatherSimulationAction.CLEAR:
        return "clear (no rain, no wind)"
    return f"wind {values['Wind']:g} km/h (gusts {values['Gust']:g} km/h)"


def find_target(config: ObsyConfig, source_name: str | None = None) -> SimulatorTarget:
    """The INDI weather source to act on: the one named, else the first enabled INDI source."""
    indi_sources = [s for s in config.weather.sources if isinstance(s, IndiWeatherSourceConfig)]
    if source_name is not None:
        chosen = [s for s in indi_sources if s.name == source_name]
        if not chosen:
            names = ", ".join(s.name for s in indi_sources) or "none"
            raise SimulationError(f"no INDI weather source named {source_name!r} (INDI sources: {names})")
        source = chosen[0]
    else:
        enabled = [s for s in indi_sources if s.enabled]
        if not enabled:
            raise SimulationError("no enabled INDI weather source in weather.sources: nothing to simulate")
        source = enabled[0]
    return target_of(source, config.indi)


def target_of(source: IndiWeatherSourceConfig, indi: IndiServerConfig) -> SimulatorTarget:
    return SimulatorTarget(source.name, source.host or indi.host, source.port or indi.port, source.device)


def check_simulator(client: IndiClient, device: str, timeout: float) -> None:
    """Raise SimulationError unless ``device`` (connected) is the INDI weather simulator."""
    try:
        driver = client.wait_property(device, "DRIVER_INFO", timeout=min(timeout, 3.0)).values.get("DRIVER_EXEC")
    except IndiError:
        driver = None  # a driver without DRIVER_INFO: WEATHER_CONTROL decides
    if driver is not None and driver != SIMULATOR_DRIVER:
        raise SimulationError(
            f"{device!r} is driven by {driver}, not {SIMULATOR_DRIVER}: only the simulator's weather can be changed"
        )
    try:
        client.wait_property(device, CONTROL, timeout=timeout)
    except IndiError:
        raise SimulationError(
            f"{device!r} has no {CONTROL} property: it is not INDI's weather simulator ({SIMULATOR_DRIVER})"
        ) from None


def _wait_for_device(client: IndiClient, device: str, what: str, timeout: float) -> None:
    """Wait for ``device`` on the server; a SimulationError naming the devices there if it never comes."""
    try:
        client.wait_device(device, timeout=timeout)
    except IndiError:
        found = ", ".join(client.devices()) or "none"
        where = f"on the INDI server at {client.address} (devices: {found})"
        raise SimulationError(f"no {what} {device!r} {where}") from None


def apply(
    client: IndiClient,
    device: str,
    action: WeatherSimulationAction,
    wind_speed: float | None = None,
    *,
    timeout: float = 10.0,
) -> dict[str, float]:
    """Set the simulator's weather through ``client`` (connected); returns the values set."""
    values = controls_for(action, wind_speed)
    _wait_for_device(client, device, "device", timeout)
    try:
        if not client.is_device_connected(device):
            client.connect_device(device, timeout=timeout)
        check_simulator(client, device, timeout)
        client.set_number(device, CONTROL, values, timeout=timeout)
        if REFRESH in client.properties(device):
            client.set_switch(device, REFRESH, "REFRESH", timeout=timeout)
    except IndiError as error:
        raise SimulationError(f"{device!r} at {client.address}: {error}") from None
    return values


def apply_at(
    target: SimulatorTarget,
    action: WeatherSimulationAction,
    wind_speed: float | None = None,
    *,
    connect_timeout: float = 10.0,
    timeout: float = 10.0,
) -> dict[str, float]:
    """Connect to the target's INDI server, set the weather, disconnect."""
    client = IndiClient(target.host, target.port, connect_timeout=connect_timeout, timeout=timeout, reconnect=False)
    try:
        client.connect()
    except IndiError as error:
        raise SimulationError(f"cannot reach the INDI server of source {target.source!r}: {error}") from None
    try:
        return apply(client, target.device, action, wind_speed, timeout=timeout)
    finally:
        client.disconnect()


# --- clouds on the sky simulator's allsky camera ---------------------------------------


@dataclass(frozen=True)
class CloudTarget:
    """Where the sky simulator's allsky camera is: the INDI server and the device name."""

    host: str
    port: int
    device: str


def cloud_target(config: ObsyConfig) -> CloudTarget:
    """The allsky camera of the configuration (``allsky.camera.device`` on ``indi``)."""
    return CloudTarget(
        config.indi.host, config.indi.port, config.setting_of("allsky", "camera.device", "CCD Simulator")
    )


def cloud_values(kind: SimulatedCloudKind | str | None, cover: float | None = None) -> dict[str, Any]:
    """The clouds an action asks for, checked: ``{"kind": ..., "cover": ...}`` (cover only for scattered)."""
    if kind is None and cover is None:
        raise SimulationError("the clouds action needs a kind (clear, scattered, bank, veil, overcast) or a cover")
    try:
        chosen = SimulatedCloudKind(kind) if kind is not None else SimulatedCloudKind.SCATTERED
    except ValueError:
        kinds = ", ".join(k.value for k in SimulatedCloudKind)
        raise SimulationError(f"unknown cloud kind {str(kind)[:40]!r} (kinds: {kinds})") from None
    if cover is not None:
        if chosen is not SimulatedCloudKind.SCATTERED:
            raise SimulationError(f"a cover is for scattered clouds, not {chosen.value}")
        if not 0 <= cover <= 100:
            raise SimulationError(f"cloud cover {cover:g} % is outside 0 to 100 %")
    return {"kind": chosen.value, "cover": None if cover is None else float(cover)}


def check_sky_simulator(client: IndiClient, device: str, timeout: float) -> None:
    """Raise SimulationError unless ``device`` is the sky simulator's allsky camera."""
    try:
        driver = client.wait_property(device, "DRIVER_INFO", timeout=min(timeout, 3.0)).values.get("DRIVER_EXEC")
    except IndiError:
        driver = None  # no DRIVER_INFO: SIM_CLOUDS decides
    if driver is not None and driver != SKYSIM_DRIVER:
        raise SimulationError(
            f"the allsky camera {device!r} is driven by {driver}, not the sky simulator ({SKYSIM_DRIVER}): "
            "only simulated clouds can be set"
        )
    if driver == SKYSIM_DRIVER:
        wait_cloud_property(client, device, CLOUDS, timeout)
        return
    try:
        client.wait_property(device, CLOUDS, timeout=timeout)
    except IndiError:
        raise SimulationError(
            f"the allsky camera {device!r} has no {CLOUDS} property (waited {timeout:g} s): "
            f"it is not the sky simulator ({SKYSIM_DRIVER})"
        ) from None


def apply_clouds(
    client: IndiClient,
    device: str,
    kind: SimulatedCloudKind | str | None,
    cover: float | None = None,
    *,
    timeout: float = 10.0,
) -> dict[str, Any]:
    """Set the sky simulator's clouds through ``client`` (connected); returns what was set."""
    values = cloud_values(kind, cover)
    _wait_for_device(client, device, "allsky camera", timeout)
    check_sky_simulator(client, device, timeout)
    try:
        if values["cover"] is not None:
            wait_cloud_property(client, device, CLOUD_SETTINGS, timeout)
            client.set_number(device, CLOUD_SETTINGS, {"COVER": values["cover"]}, timeout=timeout)
        client.set_switch(device, CLOUDS, values["kind"].upper(), timeout=timeout)
    except IndiError as error:
        raise SimulationError(f"{device!r} at {client.address}: {error}") from None
    return values


def wait_cloud_property(client: IndiClient, device: str, name: str, timeout: float) -> None:
    """Wait until the sky simulator has defined ``name``; SimulationError naming it when it never does.

    The driver defines its properties one after another, and indiserver passes them on as they
    come: a client that connects while the driver starts (or while the machine is busy) can see
    ``SIM_CLOUDS`` well before ``SIM_CLOUD_SETTINGS``, and setting a property not yet defined fails.
    """
    try:
        client.wait_property(device, name, timeout=timeout)
    except IndiError:
        raise SimulationError(
            f"the sky simulator's allsky camera {device!r} at {client.address} did not define {name} "
            f"within {timeout:g} s (its driver may still be starting, or may have failed: see indiserver's log)"
        ) from None


def apply_clouds_at(
    target: CloudTarget,
    kind: SimulatedCloudKind | str | None,
    cover: float | None = None,
    *,
    connect_timeout: float = 10.0,
    timeout: float = 10.0,
) -> dict[str, Any]:
    """Connect to the allsky camera's INDI server, set the clouds, disconnect."""
    client = IndiClient(target.host, target.port, connect_timeout=connect_timeout, timeout=timeout, reconnect=False)
    try:
        client.connect()
    except IndiError as error:
        raise SimulationError(
            f"cannot reach the INDI server of the allsky camera {target.device!r} "
            f"at {target.host}:{target.port}: {error}"
        ) from None
    try:
        return apply_clouds(client, target.device, kind, cover, timeout=timeout)
    finally:
        client.disconnect()
