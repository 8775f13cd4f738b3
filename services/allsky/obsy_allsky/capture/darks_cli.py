"""``obsy-allsky darks``: master darks into the library, through the running service or straight from the camera.

Cap the lens first (or close the shutter). With ``--service`` the command goes to the running
service on ``allsky/darks/set`` (it owns the camera, and captures the masters between two
frames) and the service's progress on ``allsky/darks/state`` is drawn as a bar until the
masters are done or have failed. Without it the camera is driven directly, for when the
service is not running. Either way the masters are taken at the sensor's current temperature
and the bad-pixel map follows from them.
"""

from __future__ import annotations

import argparse
import sys
import threading
import time
import uuid
from datetime import UTC, datetime

from obsy.config import ConfigError, ObsyConfig, load_config
from obsy.messages import AllskyDarksCommand, AllskyDarksState, CommandAnswer, CommandOrigin, Event

#: Its bus connection's name: its Last Will lies in the allsky service's own tree, which the
#: broker's ``allsky`` user may write.
BUS_NAME = "allsky/darks-cli"
PROG = "obsy-allsky darks"


def darks_command(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog=PROG, description="capture master darks into the dark library")
    parser.add_argument("--config", help="configuration file (default: $OBSY_CONFIG)")
    parser.add_argument(
        "--exposures",
        type=float,
        nargs="+",
        help="seconds; the shortest (up to 0.02 s) is the bias. Default with --service: the current bracket's",
    )
    parser.add_argument("--count", type=int, help="frames combined per master (default: camera.dark_count)")
    parser.add_argument("--gain", type=float, help="default: the current gain (--service) or the night profile's")
    parser.add_argument("--service", action="store_true", help="ask the running allsky service over the broker")
    parser.add_argument("--timeout", type=float, default=3600.0, help="--service: give up waiting after this long (s)")
    args = parser.parse_args(argv[1:])
    try:
        config = load_config(args.config)
    except ConfigError as exc:
        raise SystemExit(exc.report("obsy-allsky")) from exc
    try:
        command = AllskyDarksCommand(exposures=args.exposures or [], count=args.count, gain=args.gain)
    except ValueError as exc:
        parser.error(str(exc))
    if args.service:
        return _through_the_service(config, command, args.timeout)
    if not command.exposures:
        parser.error("--exposures is required without --service")
    return _from_the_camera(config, command)


def _progress(done: int, total: int, width: int = 30) -> None:
    filled = width * done // max(total, 1)
    sys.stderr.write(f"\rdarks [{'#' * filled}{'.' * (width - filled)}] {done}/{total}  ")
    if total and done >= total:
        sys.stderr.write("\n")
    sys.stderr.flush()


def _from_the_camera(config: ObsyConfig, command: AllskyDarksCommand) -> int:
    from obsy.indi import IndiClient
    from obsy_allsky.capture.camera import CameraError, IndiCamera
    from obsy_allsky.capture.darks import DarkLibrary, capture_masters
    from obsy_allsky.storage import FrameStore, StorageError

    cam = config.allsky.camera
    count = command.count or cam.dark_count
    gain = command.gain
    library = DarkLibrary(FrameStore(config.data_dir).root / "darks", tolerance_c=cam.dark_tolerance_c)
    client = IndiClient.from_config(config.indi, timeout=10.0)
    camera = IndiCamera(client, cam.device, readout_margin_s=cam.readout_margin_s)
    total, done = count * len(command.exposures), 0

    def one_more() -> None:
        nonlocal done
        done += 1
        _progress(done, total)

    try:
        camera.prepare()
        if gain is None:  # the night profile's, as the service's frames would be taken at it
            gain = camera.within_limits("CCD_GAIN", "GAIN", config.allsky.exposure.night.gain)
        paths = capture_masters(
            camera, library, command.exposures, count=count, gain=gain, binning=cam.binning, progress=one_more
        )
    except (CameraError, StorageError, ValueError) as exc:
        print(f"\n{PROG}: {exc}", file=sys.stderr)
        return 1
    finally:
        client.disconnect()
    for path in paths:
        print(path)
    return 0


def _through_the_service(config: ObsyConfig, command: AllskyDarksCommand, timeout: float) -> int:
    from obsy.bus import Bus

    bus = Bus(config.broker, BUS_NAME)
    if not bus.start(wait=5.0):
        bus.stop()
        print(f"{PROG}: no broker at {config.broker.host}:{config.broker.port}", file=sys.stderr)
        return 1
    topics = bus.topics
    sent_at = datetime.now(UTC)
    latest: list[AllskyDarksState] = []
    refused: list[CommandAnswer] = []
    changed = threading.Condition()
    request_id = uuid.uuid4().hex

    def on_state(_topic: str, state: AllskyDarksState) -> None:
        if state.timestamp >= sent_at:  # not the retained result of an earlier command
            with changed:
                latest.append(state)
                changed.notify_all()

    def on_event(_topic: str, event: Event) -> None:
        answer = CommandAnswer.from_event(event)
        if answer is not None and answer.request_id == request_id and not answer.accepted:
            with changed:
                refused.append(answer)
                changed.notify_all()

    try:
        bus.subscribe(topics.allsky_darks_state, on_state, AllskyDarksState)
        bus.subscribe(topics.events("allsky"), on_event, Event)
        origin = CommandOrigin.command_line()
        bus.publish(
            topics.allsky_darks_command, command.model_copy(update={"origin": origin, "request_id": request_id}), qos=1
        )
        deadline = time.monotonic() + timeout
        with changed:
            while not latest or latest[-1].status not in ("done", "failed"):
                if refused:
                    print(f"{PROG}: refused: {'; '.join(refused[0].reasons)}", file=sys.stderr)
                    return 1
                if latest and latest[-1].total:
                    _progress(latest[-1].done, latest[-1].total)
                left = deadline - time.monotonic()
                if left <= 0 or not changed.wait(left):
                    if not latest:
                        print(f"{PROG}: the allsky service did not answer (is it running?)", file=sys.stderr)
                    else:
                        print(f"\n{PROG}: no result after {timeout:g} s", file=sys.stderr)
                    return 1
        result = latest[-1]
    finally:
        bus.stop()
    if result.status == "failed":
        print(f"\n{PROG}: {result.error}", file=sys.stderr)
        return 1
    _progress(result.done, result.total)
    for name in result.masters:
        print(name)
    print(f"bad-pixel map: {result.hot_pixels} hot pixels" if result.hot_pixels is not None else "no bad-pixel map")
    return 0
