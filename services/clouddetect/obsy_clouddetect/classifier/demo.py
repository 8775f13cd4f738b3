"""A demonstration classifier trained on generated night skies (Clear, Cloudy, Overcast).

Used by the tests and the benchmark, and a way to try the classifier path before any
frames of one's own are labelled:

    python -m obsy_clouddetect.classifier.demo OUTPUT_FOLDER

The skies are rendered by :mod:`obsy_clouddetect.transmission.synthetic` from the star
catalogue, so the model has only ever seen synthetic frames: its measured accuracy holds
for those and says nothing about a real camera. Train on your own collected frames
(``obsy-clouddetect collect`` then ``obsy-clouddetect train``) for real use.
"""

from __future__ import annotations

import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np

from obsy.skymodel import SkyModel
from obsy_clouddetect.catalogue import load_catalogue
from obsy_clouddetect.classifier import pooled
from obsy_clouddetect.transmission.synthetic import CloudPatches, SyntheticSky, UniformCloud

SITE = (50.0, 8.0, 200.0)
START = datetime(2026, 1, 15, 20, 0, tzinfo=UTC)
CLASSES = ("Clear", "Cloudy", "Overcast")


def stretch(frame: np.ndarray) -> np.ndarray:
    """The 8-bit picture an allsky camera would save: a fixed black point and gain."""
    return np.clip((frame.astype(np.float32) - 100.0) / 8.0, 0, 255).astype(np.uint8)


def generate(per_class: int = 8, size: tuple[int, int] = (320, 240), seed: int = 0) -> dict[str, list[np.ndarray]]:
    """8-bit frames by class, at several times of one night, with random cloud patches."""
    rng = np.random.default_rng(seed)
    catalogue = load_catalogue()
    width, height = size
    model = SkyModel((width - 1) / 2, (height - 1) / 2, 0.95 * height / np.pi, 0.0, False, "equidistant")
    sky = SyntheticSky(model, width, height, psf_sigma=0.8)
    stars = catalogue.brighter_than(sky.catalogue_limit)
    images: dict[str, list[np.ndarray]] = {name: [] for name in CLASSES}
    for i in range(per_class):
        when = START + timedelta(minutes=40 * i)
        positions = stars.altaz(*SITE, when)
        patches = tuple(
            (float(rng.uniform(10, 80)), float(rng.uniform(0, 360)), float(rng.uniform(20, 45)))
            for _ in range(int(rng.integers(2, 5)))
        )
        masks = {
            "Clear": UniformCloud(1.0),
            "Cloudy": CloudPatches(patches),
            "Overcast": UniformCloud(float(rng.uniform(0.0, 0.05))),
        }
        for name, mask in masks.items():
            frame = sky.render(
                catalogue, *SITE, when, clouds=mask, seed=int(rng.integers(1 << 30)), positions=positions
            )
            images[name].append(stretch(frame))
    return images


def make_demo_model(out: Path, per_class: int = 16) -> Path:
    """Train on generated skies and write ``model.tflite`` and ``labels.txt`` into ``out``."""
    return pooled.train_and_export(generate(per_class), out)


if __name__ == "__main__":
    if len(sys.argv) != 2:
        raise SystemExit("usage: python -m obsy_clouddetect.classifier.demo OUTPUT_FOLDER")
    print(make_demo_model(Path(sys.argv[1])))
