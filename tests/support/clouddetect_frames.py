"""Synthetic allsky frames on disk and the AllskyFrame events that point at them."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import cv2
import numpy as np

from obsy.messages import AllskyFrame
from obsy.skymodel import SkyModel
from obsy_clouddetect.catalogue import load_catalogue
from obsy_clouddetect.classifier.demo import stretch
from obsy_clouddetect.transmission.synthetic import CloudMask, SyntheticSky

# A winter night at a site the tests' config names (latitude 48.2, longitude 16.4, 180 m).
SITE = (48.2, 16.4, 180.0)
NIGHT = datetime(2026, 1, 15, 22, 0, tzinfo=UTC)
DAY = datetime(2026, 6, 15, 11, 0, tzinfo=UTC)
MODEL = SkyModel(655.0, 470.0, 300.0, 37.0, False, "equisolid")


class FrameFactory:
    """Renders frames into ``<data_dir>/frames`` and describes them as bus events."""

    def __init__(self, data_dir: Path) -> None:
        self.folder = data_dir / "frames"
        self.folder.mkdir(parents=True, exist_ok=True)
        self.sky = SyntheticSky(MODEL, 1280, 960)
        self.catalogue = load_catalogue()
        self.count = 0

    def frame(
        self, clouds: CloudMask | None = None, when: datetime = NIGHT, url_style: str = "file", eight_bit: bool = False
    ) -> AllskyFrame:
        """A 16-bit PNG (linear, as for photometry) or an 8-bit stretched one (as most cameras save)."""
        image = self.sky.render(self.catalogue, *SITE, when, clouds=clouds, seed=self.count)
        if eight_bit:
            image = stretch(image)
        return self.save(image, when, url_style)

    def save(self, image: np.ndarray, when: datetime, url_style: str = "file") -> AllskyFrame:
        self.count += 1
        name = f"frame-{self.count:03d}.png"
        cv2.imwrite(str(self.folder / name), image)
        url = (self.folder / name).resolve().as_uri() if url_style == "file" else f"frames/{name}"
        return self.event(url, when, name)

    def event(self, url: str, when: datetime, frame_id: str) -> AllskyFrame:
        return AllskyFrame(
            timestamp=when,
            frame_id=frame_id,
            night=when.date().isoformat(),
            exposure_s=self.sky.exposure_s,
            url=url,
            width=self.sky.width,
            height=self.sky.height,
        )
