"""A target's night as the imaging service leaves it for the web: its lights graded (``imaging/frames``),
calibrated (``imaging/calibrated``, with float32 FITS in the repository), a live stack and a night stack,
each message as the imaging service publishes it. The truth the target page is checked against:
where each light's one bright star is, which lights were rejected and why, the figures of each grade.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
from astropy.io import fits
from PIL import Image

from obsy.messages import ImagingCalibrated, ImagingFrame, ImagingLiveStack, ImagingNightStack
from obsy.stretch import autostretch

#: The plan of the target kept by the web service (POST /api/v1/targets): lights per filter.
PLANS = [
    {"filter": "Ha", "exposure_s": 300, "count": 10},
    {"filter": "OIII", "exposure_s": 300, "count": 5},
    {"filter": "SII", "exposure_s": 300, "count": 5},
]

SHAPE = (400, 600)  # height, width of every light and stack
SKY, NOISE = 1000.0, 20.0


def star_image(star_xy: tuple[float, float], seed: int, shape: tuple[int, int] = SHAPE) -> np.ndarray:
    """A flat sky with Gaussian noise and one bright star (FWHM 4 px) at ``star_xy``: float32."""
    rng = np.random.default_rng(seed)
    image = rng.normal(SKY, NOISE, shape)
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    image += 30_000.0 * np.exp(-((xx - star_xy[0]) ** 2 + (yy - star_xy[1]) ** 2) / (2 * (4 / 2.3548) ** 2))
    return image.astype(np.float32)


def write_fits(path: Path, image: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fits.PrimaryHDU(image).writeto(path, overwrite=True)


@dataclass
class Light:
    frame_id: int
    filter: str
    exposure_s: float
    date_obs: datetime
    accepted: bool
    rejected_because: list[str]
    fwhm_px: float
    background: float
    star_xy: tuple[float, float]
    calibrated: str  # the calibrated FITS, relative to the repository


@dataclass
class TargetNight:
    target: str
    night: str
    lights: list[Light] = field(default_factory=list)
    live_stack: ImagingLiveStack | None = None
    night_stack: ImagingNightStack | None = None


def publish_target_night(
    publish: Callable[[str, str], None],
    repository: Path,
    *,
    target: str = "NGC 7000",
    night: str = "2026-08-14",
    first_id: int = 500,
    stack_id: int = 40,
) -> TargetNight:
    """Six lights (four Ha of 300 s, two OIII of 300 s; the third Ha rejected for its FWHM), their
    calibrated FITS, the Ha live stack after its folds and the night's Ha stack: written and published
    with ``publish(topic under the prefix, payload)``."""
    start = datetime.fromisoformat(f"{night}T21:00:00+00:00").astimezone(UTC)
    truth = TargetNight(target, night)
    plan = [("Ha", 2.6, 1010.0), ("Ha", 2.8, 1005.0), ("Ha", 6.5, 1100.0), ("Ha", 2.7, 990.0), ("OIII", 3.0, 800.0)]
    plan.append(("OIII", 3.1, 780.0))
    for index, (filter_name, fwhm, background) in enumerate(plan):
        frame_id = first_id + index
        when = start + timedelta(minutes=6 * index)
        rejected = ["FWHM 6.50 px above the limit of 5.00 px"] if fwhm > 5 else []
        raw = f"lights/{night}/{target.replace(' ', '_')}/{filter_name}/light_{frame_id}.fits"
        calibrated = f"calibrated/{night}/light_{frame_id}.fits"
        star_xy = (100.0 + 70 * index, 80.0 + 40 * index)
        write_fits(repository / calibrated, star_image(star_xy, seed=frame_id))
        light = Light(frame_id, filter_name, 300.0, when, not rejected, rejected, fwhm, background, star_xy, calibrated)
        truth.lights.append(light)
        # The second light is reported late (a backlog after a restart), after the third: the grid
        # still lists the lights in the order taken.
        reported = when + timedelta(minutes=5, seconds=5) + timedelta(minutes=10 if index == 1 else 0)
        frame = ImagingFrame(
            timestamp=reported,
            frame_id=frame_id,
            sha256=f"{frame_id:064x}",
            path=raw,
            source=f"/capture/{target}/light_{frame_id}.fits",
            frame_type="light",
            night=night,
            target=target,
            filter=filter_name,
            exposure_s=300.0,
            date_obs=when,
            width=SHAPE[1],
            height=SHAPE[0],
            accepted=light.accepted,
            rejected_because=rejected,
            stars=150 - index,
            fwhm_px=fwhm,
            background=background,
            noise=NOISE,
            snr=40.0 + index,
        )
        publish("imaging/frames", frame.to_json())
        publish(
            "imaging/calibrated",
            ImagingCalibrated(
                timestamp=when + timedelta(minutes=5, seconds=8),
                frame_id=frame_id,
                light=raw,
                path=calibrated,
                night=night,
                target=target,
                filter=filter_name,
            ).to_json(),
        )
    accepted_ha = [light for light in truth.lights if light.filter == "Ha" and light.accepted]
    stack_fits = f"stacks/{night}/{stack_id}/stack.fits"
    write_fits(repository / stack_fits, star_image((300.0, 200.0), seed=stack_id))
    preview = f"stacks/{night}/{stack_id}/preview.jpg"
    stretched = np.rint(autostretch(star_image((300.0, 200.0), seed=stack_id)) * 255).astype(np.uint8)
    Image.fromarray(stretched, mode="L").save(repository / preview, format="JPEG")
    for frames in range(1, len(accepted_ha) + 1):
        truth.live_stack = ImagingLiveStack(
            timestamp=accepted_ha[frames - 1].date_obs + timedelta(minutes=5, seconds=10),
            stack_id=stack_id,
            night=night,
            target=target,
            filter="Ha",
            frames=frames,
            integration_s=300.0 * frames,
            reference=f"lights/{night}/first.fits",
            path=stack_fits,
            preview=preview,
            frame_id=accepted_ha[frames - 1].frame_id,
            weight=1.0,
            shift_px=(0.5, -0.25),
            rotation_deg=0.0,
            fold_s=0.4,
        )
        publish("imaging/livestack/state", truth.live_stack.to_json())
    night_fits = f"stacks/{night}/{stack_id + 1}/night.fits"
    write_fits(repository / night_fits, star_image((450.0, 120.0), seed=stack_id + 1))
    truth.night_stack = ImagingNightStack(
        timestamp=start + timedelta(hours=8),
        stack_id=stack_id + 1,
        live_stack_id=stack_id,
        night=night,
        target=target,
        filter="Ha",
        frames=len(accepted_ha),
        integration_s=300.0 * len(accepted_ha),
        rejection="winsorized 3/3",
        rejected_fraction=0.004,
        path=night_fits,
        seconds=1.5,
    )
    publish("imaging/nightstacks", truth.night_stack.to_json())
    return truth
