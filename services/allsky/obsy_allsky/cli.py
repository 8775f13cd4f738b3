"""``obsy-allsky darks``, ``obsy-allsky keogram`` and ``obsy-allsky star-trails``.

darks        captures master darks (INDI frame type DARK: cap the lens of a camera without a
             shutter) for the given exposures into the dark library, at the current temperature;
keogram      builds the keogram of a stored night;
star-trails  builds the star trails of a stored night.

Products go to ``<data_dir>/allsky/<night>/products/``; long jobs show a progress bar.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import cv2

from obsy.config import ConfigError, ObsyConfig, load_config


def _config(path: str | None) -> ObsyConfig:
    try:
        return load_config(path)
    except ConfigError as exc:
        raise SystemExit(exc.report("obsy-allsky")) from exc


def progress_bar(label: str, width: int = 40):
    """A callback (done, total) that draws a text progress bar on stderr."""

    def show(done: int, total: int) -> None:
        filled = width * (done + 1) // max(total, 1)
        sys.stderr.write(f"\r{label} [{'#' * filled}{'.' * (width - filled)}] {done + 1}/{total}")
        if done + 1 >= total:
            sys.stderr.write("\n")
        sys.stderr.flush()

    return show


def darks_command(argv: list[str]) -> int:
    from obsy.indi import IndiClient
    from obsy_allsky.capture.camera import CameraError, IndiCamera
    from obsy_allsky.capture.darks import DarkLibrary, capture_master
    from obsy_allsky.storage import FrameStore

    parser = argparse.ArgumentParser(prog="obsy-allsky darks", description="capture master darks into the library")
    parser.add_argument("--config", help="configuration file (default: $OBSY_CONFIG)")
    parser.add_argument(
        "--exposures", type=float, nargs="+", required=True, help="seconds; the shortest (up to 0.02 s) is the bias"
    )
    parser.add_argument("--count", type=int, default=10, help="frames combined per master")
    parser.add_argument("--gain", type=float, help="default: the night profile's gain")
    args = parser.parse_args(argv[1:])
    config = _config(args.config)
    settings = config.allsky
    gain = settings.exposure.night.gain if args.gain is None else args.gain
    library = DarkLibrary(FrameStore(config.data_dir).root / "darks")
    client = IndiClient.from_config(config.indi, timeout=10.0)
    camera = IndiCamera(client, settings.camera.device, readout_margin_s=settings.camera.readout_margin_s)
    try:
        camera.prepare()
        camera.set_binning(settings.camera.binning)
        camera.set_gain(gain)
        for exposure in args.exposures:
            master, used = capture_master(camera, exposure, args.count)
            temperature = camera.temperature()
            path = library.save(
                master,
                gain=gain,
                binning=settings.camera.binning,
                temperature_c=temperature if temperature is not None else 0.0,
                exposure_s=used,
            )
            print(f"{path} ({args.count} x {used:g} s)")
    except CameraError as exc:
        print(f"obsy-allsky darks: {exc}", file=sys.stderr)
        return 1
    finally:
        client.disconnect()
    return 0


def product_command(argv: list[str]) -> int:
    from obsy_allsky.products.night import keogram, night_frames, star_trails
    from obsy_allsky.storage import FrameStore

    kind = argv[0]
    parser = argparse.ArgumentParser(prog=f"obsy-allsky {kind}", description=f"build the {kind} of a stored night")
    parser.add_argument("night", help="YYYY-MM-DD (the evening the night began)")
    parser.add_argument("--config", help="configuration file (default: $OBSY_CONFIG)")
    parser.add_argument("--max-brightness", type=float, default=0.35, help="star-trails: skip brighter frames (0-1)")
    args = parser.parse_args(argv[1:])
    config = _config(args.config)
    night_dir = FrameStore(config.data_dir).root / args.night
    paths = night_frames(night_dir)
    if not paths:
        print(f"obsy-allsky {kind}: no frames in {night_dir}", file=sys.stderr)
        return 1
    bar = progress_bar(kind)
    if kind == "keogram":
        product = keogram(paths, config.allsky.pipeline.circle_center[0], progress=bar)
    else:
        product = star_trails(paths, args.max_brightness, progress=bar)
    if product.image is None:
        print(f"obsy-allsky {kind}: no usable frame in {night_dir} (skipped: {product.skipped})", file=sys.stderr)
        return 1
    out = output_path(config.data_dir, args.night, kind)
    out.parent.mkdir(parents=True, exist_ok=True)
    if not cv2.imwrite(str(out), cv2.cvtColor(product.image, cv2.COLOR_RGB2BGR)):
        print(f"obsy-allsky {kind}: cannot write {out}", file=sys.stderr)
        return 1
    skipped = ", ".join(f"{n} {why}" for why, n in product.skipped.items()) or "none"
    print(f"{out} ({product.used} frames; skipped: {skipped})")
    return 0


COMMANDS = {"darks": darks_command, "keogram": product_command, "star-trails": product_command}


def output_path(data_dir: Path, night: str, kind: str) -> Path:
    """Where a night's product goes: beside the frames, in a folder the frame listing does not read."""
    return Path(data_dir) / "allsky" / night / "products" / f"{kind}.jpg"
