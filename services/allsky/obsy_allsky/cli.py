"""The ``obsy-allsky`` commands besides running the service.

darks                  master darks into the dark library (capture/darks_cli.py);
keogram, startrails (star-trails), timelapse, panorama, summary
                       build that product of a stored night into ``<data_dir>/allsky/<night>/products/``;
thumbnails             writes the missing frame thumbnails of a stored night;
products               builds every product of ``allsky.products.nightly`` for a stored night.

Product jobs draw a progress bar on stderr and publish their progress on ``allsky/progress``
when a broker answers (``--no-bus`` to skip it).
"""

from __future__ import annotations

import argparse
import sys

from obsy.config import ConfigError, ObsyConfig, load_config
from obsy_allsky.capture.darks_cli import darks_command


def _config(path: str | None) -> ObsyConfig:
    try:
        return load_config(path)
    except ConfigError as exc:
        raise SystemExit(exc.report("obsy-allsky")) from exc


def _progress_bus(config: ObsyConfig, wanted: bool):
    """A connected bus for the progress topic, or None (asked not to, or no broker answers)."""
    if not wanted:
        return None
    from obsy.bus import Bus

    # Named inside allsky's topic tree, so that the broker's ACL for the allsky user also
    # covers this connection's Last Will (<p>/allsky/products/availability).
    bus = Bus(config.broker, "allsky/products")
    if bus.start(wait=3.0):
        return bus
    print(
        f"obsy-allsky: no broker at {config.broker.host}:{config.broker.port}; progress is not published",
        file=sys.stderr,
    )
    bus.stop()
    return None


def _product_arguments(name: str, kind: str, argv: list[str]) -> tuple[argparse.Namespace, ObsyConfig]:
    """The parsed arguments of a product command and the configuration with its overrides applied."""
    from datetime import date

    parser = argparse.ArgumentParser(prog=f"obsy-allsky {name}", description=PRODUCT_HELP[kind])
    parser.add_argument("night", help="YYYY-MM-DD (the evening the night began)")
    parser.add_argument("--config", help="configuration file (default: $OBSY_CONFIG)")
    parser.add_argument("--no-bus", action="store_true", help="do not publish progress on the broker")
    if kind == "panorama":
        parser.add_argument("--frame", help="frame id (default: the frame with the most stars)")
    if kind == "startrails":
        parser.add_argument("--max-brightness", type=float, help="skip brighter frames (0-1; default from config)")
    args = parser.parse_args(argv)
    try:
        args.night_date = date.fromisoformat(args.night)
    except ValueError:
        parser.error(f"night {args.night!r} is not a date YYYY-MM-DD")
    config = _config(args.config)
    if getattr(args, "max_brightness", None) is not None:
        if not 0 < args.max_brightness <= 1:
            parser.error(f"--max-brightness {args.max_brightness} is not in (0, 1]")
        config.allsky.products.startrails_max_brightness = args.max_brightness
    return args, config


def product_command(argv: list[str]) -> int:
    from obsy_allsky.products.jobs import run_job
    from obsy_allsky.products.progress import JobProgress, terminal_bar

    kind = ALIASES.get(argv[0], argv[0])
    args, config = _product_arguments(argv[0], kind, argv[1:])
    kinds = list(config.allsky.products.nightly) if kind == "products" else [kind]
    if not kinds:
        print("obsy-allsky products: allsky.products.nightly is empty, nothing to build", file=sys.stderr)
        return 1
    kinds.sort(key=lambda k: k == "summary")  # the summary lists the products made before it
    bus = _progress_bus(config, not args.no_bus)
    publish = (lambda m: bus.publish(bus.topics.allsky_progress, m, qos=1, retain=True)) if bus else None
    failed = 0
    progress = None
    try:
        for job in kinds:
            progress = JobProgress(job, args.night, publish=publish, draw=terminal_bar(job))
            path = run_job(job, args.night_date, config, progress, frame_id=getattr(args, "frame", None))
            if path is None:
                failed += 1
                print(f"obsy-allsky {job}: {progress.note}", file=sys.stderr)
            else:
                print(f"{path} ({progress.note})")
    except KeyboardInterrupt:
        if progress is not None:
            progress.finish(None, "interrupted")  # the retained progress must not stay "running"
        print(f"\nobsy-allsky {kind}: interrupted; nothing half-written is left", file=sys.stderr)
        return 130
    finally:
        if bus is not None:
            bus.stop()
    return 1 if failed else 0


PRODUCT_HELP = {
    "keogram": "build the keogram of a stored night (one column per frame)",
    "startrails": "build the star trails of a stored night (brightest value per pixel, bright frames left out)",
    "timelapse": "encode the timelapse video of a stored night (ffmpeg; hardware encoder when one works)",
    "panorama": "unroll one frame of a stored night into a 360-degree panorama",
    "summary": "write the summary of a stored night (JSON and a small image)",
    "thumbnails": "write the missing frame thumbnails of a stored night",
    "products": "build every product of allsky.products.nightly for a stored night",
}
ALIASES = {"star-trails": "startrails"}


COMMANDS = {"darks": darks_command, **dict.fromkeys([*PRODUCT_HELP, *ALIASES], product_command)}
