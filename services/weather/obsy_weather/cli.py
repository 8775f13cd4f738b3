"""``obsy-weather simulate``: make it rain (or clear, or blow) on INDI's weather simulator.

    obsy-weather simulate rain              rain at 10 mm/h: the verdict turns unsafe at once
    obsy-weather simulate clear             no rain, no wind: safe again after weather.safe_delay
    obsy-weather simulate wind 55           mean wind 55 km/h (gusts 30 % more, at most 50 km/h)
    obsy-weather simulate clouds --cover 60 scattered clouds over 60 % of the sky (no rain)
    obsy-weather simulate clouds --kind overcast   (or clear, scattered, bank, veil)

It talks to the simulator directly over INDI (the first enabled INDI weather source of the
configuration, or ``--source NAME``), so it works whether or not the service runs; the
service sees the change with the simulator's next update. Devices that are not the
simulator are refused.

``clouds`` sets the sky simulator's clouds on the allsky camera (``allsky.camera.device`` on
the configuration's INDI server), which must be ``indi_obsy_allsky``; clouddetect sees them in
the camera's next frame.
"""

from __future__ import annotations

import argparse
import sys

from obsy.config import ConfigError, load_config
from obsy.messages import SimulatedCloudKind, WeatherSimulationAction
from obsy_weather.simulator import (
    MAX_WIND_KMH,
    SimulationError,
    apply_at,
    apply_clouds_at,
    cloud_target,
    cloud_values,
    describe,
    find_target,
)

EXIT_FAILED = 1
EXIT_USAGE = 2


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="obsy-weather simulate",
        description="Change the weather of INDI's weather simulator (demonstrations and tests).",
    )
    parser.add_argument("action", choices=[a.value for a in WeatherSimulationAction])
    parser.add_argument("speed", nargs="?", type=float, help="wind: mean wind speed in km/h")
    parser.add_argument(
        "--kind", choices=[k.value for k in SimulatedCloudKind], help="clouds: the kind (default scattered)"
    )
    parser.add_argument("--cover", type=float, help="clouds: percent of the sky, 0 to 100 (scattered clouds)")
    parser.add_argument("--source", help="the INDI weather source to use (default: the first enabled one)")
    parser.add_argument("-c", "--config", help="YAML config file (default: $OBSY_CONFIG, then ./config/obsy.yaml)")
    parser.add_argument("--timeout", type=float, default=10.0, help="seconds for each INDI step (default 10)")
    return parser


def simulate_command(argv: list[str]) -> int:
    parser = _parser()
    args = parser.parse_args(argv[1:])
    action = WeatherSimulationAction(args.action)
    if action is WeatherSimulationAction.WIND and (args.speed is None or not 0 <= args.speed <= MAX_WIND_KMH):
        parser.error(f"wind needs a speed in km/h from 0 to {MAX_WIND_KMH:g} (the simulator's range), e.g. 'wind 55'")
    if action is not WeatherSimulationAction.WIND and args.speed is not None:
        parser.error(f"{action.value} takes no speed")
    if action is WeatherSimulationAction.CLOUDS:
        try:
            cloud_values(args.kind, args.cover)
        except SimulationError as exc:
            parser.error(f"{exc}, e.g. 'clouds --cover 60' or 'clouds --kind overcast'")
    elif args.kind is not None or args.cover is not None:
        parser.error(f"--kind and --cover are for clouds, not {action.value}")
    try:
        config = load_config(args.config)
    except ConfigError as exc:
        print(exc.report("obsy-weather"), file=sys.stderr)
        return EXIT_USAGE
    if action is WeatherSimulationAction.CLOUDS:
        return _clouds(config, args)
    try:
        target = find_target(config, args.source)
        values = apply_at(target, action, args.speed, connect_timeout=config.indi.connect_timeout, timeout=args.timeout)
    except SimulationError as exc:
        print(f"obsy-weather simulate: {exc}", file=sys.stderr)
        return EXIT_FAILED
    settings = ", ".join(f"{name}={value:g}" for name, value in values.items())
    print(f"{target.device} at {target.host}:{target.port}: {describe(action, values)} [{settings}]")
    return 0


def _clouds(config, args: argparse.Namespace) -> int:
    target = cloud_target(config)
    try:
        values = apply_clouds_at(
            target, args.kind, args.cover, connect_timeout=config.indi.connect_timeout, timeout=args.timeout
        )
    except SimulationError as exc:
        print(f"obsy-weather simulate: {exc}", file=sys.stderr)
        return EXIT_FAILED
    print(f"{target.device} at {target.host}:{target.port}: {describe(WeatherSimulationAction.CLOUDS, values)}")
    return 0


COMMANDS = {"simulate": simulate_command}
