"""The night's timelapse video, encoded by ffmpeg with a hardware H.264 encoder when one works.

Frames are decoded one at a time and written as raw BGR to ffmpeg's standard input; the pipe
blocks while ffmpeg is busy, so this process never holds more than one frame (and ffmpeg its
encoder's few frames of look-ahead), whatever the number of frames. Each frame is scaled to the
video size here, so ffmpeg only ever sees the (small) video frames. Unreadable frames and frames
of another size than the first are skipped and counted, as for the other products.

Encoder choice (``encoder: auto``): ``ffmpeg -encoders`` lists what this ffmpeg was built with,
which is not what the machine can run (Debian's ffmpeg lists NVENC, VAAPI and V4L2 everywhere),
so each listed hardware encoder is tried on a few frames of a test pattern, in the order
h264_nvenc, h264_vaapi, h264_v4l2m2m; the first that works is used, else libx264. A hardware
encoder that fails on the real frames is retried once with libx264.
"""

from __future__ import annotations

import functools
import logging
import os
import shutil
import subprocess
import threading
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import cv2

from obsy.files import atomic_replacement
from obsy_allsky.config import AllskyTimelapseConfig
from obsy_allsky.products.night import REDUCED_READ, Product, decoded_frames
from obsy_allsky.products.progress import Progress

log = logging.getLogger("obsy.allsky.products")

HARDWARE_ENCODERS = ("h264_nvenc", "h264_vaapi", "h264_v4l2m2m")
SOFTWARE_ENCODER = "libx264"
VAAPI_DEVICE = "/dev/dri/renderD128"


class TimelapseError(RuntimeError):
    """ffmpeg is missing or failed; the message carries the end of its error output."""


@dataclass
class Timelapse(Product):
    path: Path | None = None
    encoder: str = ""
    size: tuple[int, int] | None = None  # (width, height) of the video
    tried: dict[str, str] = field(default_factory=dict)  # encoder -> why it was not used


def ffmpeg_binary() -> str:
    path = shutil.which("ffmpeg")
    if path is None:
        raise TimelapseError("ffmpeg is not installed (Debian package 'ffmpeg')")
    return path


def encoder_arguments(encoder: str, settings: AllskyTimelapseConfig) -> tuple[list[str], list[str]]:
    """(arguments before the input, arguments after it) that select and tune ``encoder``."""
    q = str(settings.quality)
    if encoder == "h264_nvenc":
        return [], ["-c:v", "h264_nvenc", "-preset", "p5", "-rc", "vbr", "-cq", q, "-b:v", "0", "-pix_fmt", "yuv420p"]
    if encoder == "h264_vaapi":
        return (
            ["-vaapi_device", VAAPI_DEVICE],
            ["-vf", "format=nv12,hwupload", "-c:v", "h264_vaapi", "-qp", q],
        )
    if encoder == "h264_v4l2m2m":
        return [], ["-c:v", "h264_v4l2m2m", "-b:v", f"{settings.bitrate_kbps}k", "-pix_fmt", "yuv420p"]
    if encoder == SOFTWARE_ENCODER:
        return [], ["-c:v", "libx264", "-preset", "medium", "-crf", q, "-pix_fmt", "yuv420p"]
    raise ValueError(f"unknown encoder {encoder!r}")


def listed_encoders() -> set[str]:
    """The H.264 encoders this ffmpeg was built with (``ffmpeg -encoders``)."""
    result = subprocess.run(
        [ffmpeg_binary(), "-hide_banner", "-encoders"], capture_output=True, text=True, timeout=30, check=False
    )
    names = set()
    for line in result.stdout.splitlines():
        parts = line.split()
        if len(parts) >= 2 and parts[0].startswith("V"):
            names.add(parts[1])
    return names


def try_encoder(encoder: str, settings: AllskyTimelapseConfig) -> str | None:
    """None when ``encoder`` encodes a short test pattern here; else the reason it does not."""
    if encoder == "h264_vaapi" and not os.path.exists(VAAPI_DEVICE):
        return f"no VAAPI device {VAAPI_DEVICE}"
    before, after = encoder_arguments(encoder, settings)
    command = [
        ffmpeg_binary(),
        "-hide_banner",
        "-loglevel",
        "error",
        *before,
        "-f",
        "lavfi",
        "-i",
        "testsrc2=size=320x240:rate=5:duration=1",
        *after,
        "-f",
        "null",
        "-",
    ]
    try:
        result = subprocess.run(command, capture_output=True, text=True, timeout=60, check=False)
    except subprocess.TimeoutExpired:
        return "test encode timed out"
    if result.returncode == 0:
        return None
    lines = [line.strip() for line in result.stderr.splitlines() if line.strip()]
    if not lines:
        return f"ffmpeg exited with status {result.returncode}"
    return lines[0] if len(lines) == 1 else f"{lines[0]} ... {lines[-1]}"


@functools.lru_cache(maxsize=8)
def _choose(requested: str, quality: int, bitrate_kbps: int) -> tuple[str, tuple[tuple[str, str], ...]]:
    settings = AllskyTimelapseConfig(encoder=requested, quality=quality, bitrate_kbps=bitrate_kbps)
    if requested != "auto":
        return requested, ()
    listed = listed_encoders()
    tried: dict[str, str] = {}
    for name in HARDWARE_ENCODERS:
        if name not in listed:
            tried[name] = "not built into this ffmpeg"
            continue
        reason = try_encoder(name, settings)
        if reason is None:
            return name, tuple(tried.items())
        tried[name] = reason
    return SOFTWARE_ENCODER, tuple(tried.items())


def choose_encoder(settings: AllskyTimelapseConfig) -> tuple[str, dict[str, str]]:
    """The encoder to use and, for ``auto``, why each hardware encoder before it was passed over.

    The probe runs once per process and settings (it takes a second or two).
    """
    name, tried = _choose(settings.encoder, settings.quality, settings.bitrate_kbps)
    return name, dict(tried)


def video_size(width: int, height: int, target_width: int) -> tuple[int, int]:
    """The video's (width, height): ``target_width`` wide (0: as the frames), both even (4:2:0 needs it)."""
    if target_width and width > target_width:
        height = round(height * target_width / width)
        width = target_width
    return max(2, width - width % 2), max(2, height - height % 2)


def decode_reduction(paths: list[Path], target_width: int) -> int:
    """The largest JPEG decoding reduction (1, 2, 4, 8) that still leaves the frames at least ``target_width`` wide.

    Decoding a 12 MP JPEG at 1/4 size costs a fraction of decoding it whole and then shrinking
    it; the frames are then shrunk the rest of the way (area average) as before.
    """
    if not target_width:
        return 1
    for path in paths:  # the size of the first readable frame, from its cheapest decoding
        small = cv2.imread(str(path), REDUCED_READ[8])
        if small is not None:
            width = small.shape[1] * 8 - 7  # the least the full width can be
            return max(k for k in REDUCED_READ if width // k >= target_width or k == 1)
    return 1


def make_timelapse(
    paths: Iterable[Path],
    out: Path,
    settings: AllskyTimelapseConfig,
    progress: Progress | None = None,
) -> Timelapse:
    """Encode the frames (in order) into the MP4 ``out``; written to a temporary file, then renamed."""
    paths = list(paths)
    encoder, tried = choose_encoder(settings)
    if tried:
        log.info("timelapse encoder %s (%s)", encoder, "; ".join(f"{k}: {v}" for k, v in tried.items()))
    try:
        result = _encode(paths, out, settings, encoder, progress)
    except TimelapseError as exc:
        if encoder == SOFTWARE_ENCODER:
            raise
        log.warning("%s failed (%s); encoding again with %s", encoder, exc, SOFTWARE_ENCODER)
        tried[encoder] = str(exc)
        result = _encode(paths, out, settings, SOFTWARE_ENCODER, progress)
    result.tried = tried
    return result


def _encode(
    paths: list[Path], out: Path, settings: AllskyTimelapseConfig, encoder: str, progress: Progress | None
) -> Timelapse:
    binary = ffmpeg_binary()  # before any file is made: a missing ffmpeg leaves nothing behind
    result = Timelapse(image=None, encoder=encoder)
    frames = decoded_frames(paths, result, progress, color="bgr", reduce=decode_reduction(paths, settings.width))
    first = next(frames, None)
    if first is None:
        return result
    size = video_size(first.shape[1], first.shape[0], settings.width)
    result.size = size
    out.parent.mkdir(parents=True, exist_ok=True)
    with atomic_replacement(out) as temporary:
        process = subprocess.Popen(
            _command(binary, encoder, settings, size, str(temporary)),
            stdin=subprocess.PIPE,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        try:
            errors: list[bytes] = []
            reader = threading.Thread(target=lambda: errors.append(process.stderr.read()), daemon=True)
            reader.start()
            try:
                for frame in _chain(first, frames):
                    same_size = (frame.shape[1], frame.shape[0]) == size
                    image = frame if same_size else cv2.resize(frame, size, interpolation=cv2.INTER_AREA)
                    process.stdin.write(memoryview(image).cast("B"))
                    result.used += 1
                process.stdin.close()
            except BrokenPipeError:
                pass  # ffmpeg stopped reading: its status and message say why
            status = process.wait()
            reader.join(timeout=10)
            if status != 0:
                message = b"".join(errors).decode(errors="replace").strip().splitlines()
                raise TimelapseError(f"ffmpeg ({encoder}) failed with status {status}: {' | '.join(message[-3:])}")
        finally:
            if process.poll() is None:  # stopped early (an exception): the temporary file goes after it
                process.kill()
                process.wait()
    result.path = out
    return result


def _command(binary: str, encoder: str, settings: AllskyTimelapseConfig, size: tuple[int, int], out: str) -> list[str]:
    """ffmpeg reading raw BGR frames of ``size`` from its standard input, writing an MP4 to ``out``."""
    before, after = encoder_arguments(encoder, settings)
    return [
        binary,
        "-hide_banner",
        "-loglevel",
        "error",
        "-y",
        *before,
        "-f",
        "rawvideo",
        "-pix_fmt",
        "bgr24",
        "-s",
        f"{size[0]}x{size[1]}",
        "-framerate",
        f"{settings.fps:g}",
        "-i",
        "pipe:0",
        *after,
        "-movflags",
        "+faststart",
        "-f",
        "mp4",
        out,
    ]


def _chain(first, rest):
    yield first
    yield from rest


def probe_video(path: Path) -> dict[str, float | int | str]:
    """Frames (counted by decoding), duration, size and codec of a video, read by ffprobe."""
    ffprobe = shutil.which("ffprobe")
    if ffprobe is None:
        raise TimelapseError("ffprobe is not installed (Debian package 'ffmpeg')")
    result = subprocess.run(
        [
            ffprobe,
            "-v",
            "error",
            "-select_streams",
            "v:0",
            "-count_frames",
            "-show_entries",
            "stream=nb_read_frames,width,height,codec_name,avg_frame_rate:format=duration",
            "-of",
            "default=noprint_wrappers=1",
            str(path),
        ],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    if result.returncode != 0:
        raise TimelapseError(f"ffprobe cannot read {path}: {result.stderr.strip()}")
    values = dict(line.split("=", 1) for line in result.stdout.splitlines() if "=" in line)
    numerator, _, denominator = values.get("avg_frame_rate", "0/1").partition("/")
    return {
        "frames": int(values["nb_read_frames"]),
        "duration_s": float(values["duration"]),
        "width": int(values["width"]),
        "height": int(values["height"]),
        "codec": values["codec_name"],
        "fps": float(numerator) / float(denominator or 1) if float(denominator or 1) else 0.0,
    }
