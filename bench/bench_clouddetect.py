"""Per-frame time of each clouddetect method on a 3856 x 2180 allsky frame.

Targets: the star-transmission map under 300 ms on the CPU, the classifier under 30 ms.
The frame is synthetic (rendered from the catalogue through a known equisolid lens), so the
bench also prints how close the fitted model and the cover came to the truth. The
reference for star detection is OpenCV's SimpleBlobDetector on the same frame, the usual
quick way to find stars without a star-specific tool.

Then the demonstration TFLite classifier (trained on clouddetect's own synthetic skies) on skies
the sky simulator renders (services/skysim), which it never learnt from: its accuracy per kind of
sky against the simulator's clouds, as measured, not tuned.

    python -m bench bench_clouddetect
"""

from __future__ import annotations

import os
import statistics
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import cv2

from obsy.skymodel import SkyModel
from obsy_clouddetect.catalogue import load_catalogue
from obsy_clouddetect.classifier.demo import make_demo_model, stretch
from obsy_clouddetect.classifier.runtime import SkyClassifier
from obsy_clouddetect.transmission.analyser import TransmissionAnalyser
from obsy_clouddetect.transmission.stars import PreparedFrame, detect_stars
from obsy_clouddetect.transmission.synthetic import CloudPatches, SyntheticSky
from obsy_skysim.allsky import AllskyRenderer, Site
from obsy_skysim.clouds import Clouds, make_clouds
from obsy_skysim.sensor import SensorSpec
from tests.support.skysim import demo_classifier_exposure, demo_classifier_picture

WIDTH, HEIGHT = 3856, 2180
SITE = (50.0, 8.0, 200.0)
WHEN = datetime(2026, 1, 15, 22, 0, tzinfo=UTC)
TRUTH = SkyModel(1931.0, 1083.0, 1085.0 / 1.4142, 23.0, False, "equisolid")
REPEATS = 7


CPU_MS: dict[str, float] = {}


def timed(function: Callable[[], object], repeats: int = REPEATS) -> tuple[float, object]:
    """Median wall time in milliseconds, and the last result. The median CPU time of the
    process (all threads) is kept in CPU_MS under the function's name: on a machine shared
    with other work, wall time grows with the load and CPU time much less."""
    times, cpu, result = [], [], None
    for _ in range(repeats):
        start, start_cpu = time.perf_counter(), time.process_time()
        result = function()
        times.append((time.perf_counter() - start) * 1000)
        cpu.append((time.process_time() - start_cpu) * 1000)
    CPU_MS["last"] = statistics.median(cpu)
    return statistics.median(times), result


def cpu() -> str:
    return f"(CPU {CPU_MS['last']:.1f} ms)"


def main() -> None:
    catalogue = load_catalogue()
    sky = SyntheticSky(TRUTH, WIDTH, HEIGHT, psf_sigma=1.4)
    clouds = CloudPatches(((45, 100, 30),))
    clear = sky.render(catalogue, *SITE, WHEN)
    partly = sky.render(catalogue, *SITE, WHEN, clouds=clouds, seed=1)
    print(f"frame {WIDTH} x {HEIGHT}, 16-bit grey, {len(catalogue)} catalogue stars")

    print(f"machine load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
    ms_background, prepared = timed(lambda: PreparedFrame(partly))
    cpu_background = cpu()
    ms_detect, detections = timed(lambda: detect_stars(prepared))
    cpu_detect = cpu()
    blob = _blob_detector()
    eight = stretch(partly)
    ms_blob, keypoints = timed(lambda: blob.detect(eight), repeats=3)
    print(f"  background and noise     {ms_background:7.1f} ms {cpu_background}")
    print(f"  star detection           {ms_detect:7.1f} ms {cpu_detect} ({len(detections)} stars)")
    print(
        f"  reference: OpenCV SimpleBlobDetector {ms_blob:7.1f} ms  ({len(keypoints)} blobs); "
        f"ratio {ms_blob / (ms_background + ms_detect):.1f}x"
    )

    analyser = TransmissionAnalyser(catalogue, *SITE)
    start = time.perf_counter()
    first = analyser.analyse(clear, WHEN, sky.exposure_s)
    ms_first = (time.perf_counter() - start) * 1000
    model = first.model
    print(
        f"  first frame, sky model fitted from nothing {ms_first:7.0f} ms: zenith off by "
        f"{model.zenith_offset_deg(TRUTH):.3f} deg, rotation {model.rotation:.2f} (true {TRUTH.rotation}), "
        f"{model.projection}"
    )
    ms_frame, result = timed(lambda: analyser.analyse(partly, WHEN, sky.exposure_s))
    truth = clouds.cover(analyser.settings.min_altitude, analyser.settings.clear_transmission)
    target = "under" if ms_frame < 300 else "OVER"
    print(
        f"  transmission map per frame (model refined) {ms_frame:7.1f} ms {cpu()} [{target} the 300 ms target]  "
        f"cover {result.cover:.1f} % (truth {truth:.1f} %)"
    )
    fixed = TransmissionAnalyser(catalogue, *SITE, model=model, zero_point=analyser.zero_point, fixed_model=True)
    ms_fixed, _ = timed(lambda: fixed.analyse(partly, WHEN, sky.exposure_s))
    print(f"  transmission map per frame (model fixed)   {ms_fixed:7.1f} ms {cpu()}")
    ms_altaz, _ = timed(lambda: analyser.catalogue.altaz(*SITE, WHEN))
    print(f"    of which catalogue positions (astropy)   {ms_altaz:7.1f} ms {cpu()}")

    with tempfile.TemporaryDirectory() as folder:
        classifier = SkyClassifier(make_demo_model(Path(folder)), threads=2)
        colour = cv2.cvtColor(eight, cv2.COLOR_GRAY2BGR)
        classifier.classify(colour)  # warm-up
        ms_class, label = timed(lambda: classifier.classify(colour), repeats=21)
        target = "under" if ms_class < 30 else "OVER"
        print(
            f"  classifier per frame (resize + TFLite)     {ms_class:7.1f} ms {cpu()} [{target} the 30 ms target]  "
            f"label {label.label}"
        )
        classifier_on_rendered_skies(classifier)


#: Skies rendered by the sky simulator for the classifier: kind -> (its clouds for frame i, the
#: labels that are right for it, the night). A veil of 0.4 is 100 % cover by clouddetect's own
#: definition, so Cloudy and Overcast are both right for it; a moonlit clear sky is Clear.
NIGHT, FULL_MOON = datetime(2026, 1, 15, 22, 0, tzinfo=UTC), datetime(2026, 1, 3, 22, 0, tzinfo=UTC)
RENDERED_SKIES: dict[str, tuple[Callable[[int], Clouds], set[str], datetime]] = {
    "clear": (lambda i: Clouds(), {"Clear"}, NIGHT),
    "clear, full Moon high": (lambda i: Clouds(), {"Clear"}, FULL_MOON),
    "scattered 20 %": (lambda i: make_clouds("scattered", cover_percent=20, seed=i), {"Cloudy"}, NIGHT),
    "scattered 50 %": (lambda i: make_clouds("scattered", cover_percent=50, seed=i), {"Cloudy"}, NIGHT),
    "scattered 80 %": (lambda i: make_clouds("scattered", cover_percent=80, seed=i), {"Cloudy"}, NIGHT),
    "bank at 40 deg": (lambda i: make_clouds("bank", bank_top_altitude=40, seed=i), {"Cloudy"}, NIGHT),
    "veil 0.4": (lambda i: make_clouds("veil", veil_transmission=0.4), {"Cloudy", "Overcast"}, NIGHT),
    "overcast": (lambda i: make_clouds("overcast"), {"Overcast"}, NIGHT),
}
FRAMES_PER_SKY = 10


def classifier_on_rendered_skies(classifier: SkyClassifier) -> None:
    """Per kind of sky, what the classifier says on ``FRAMES_PER_SKY`` rendered frames (half an hour apart),
    each exposed as an auto-exposure would for the clear sky of its moment (shorter under the Moon)."""
    renderer = AllskyRenderer(Site(48.2, 16.4, 180.0), SensorSpec(width=320, height=240, bayer=None))
    print(f"  demo classifier on skies the sky simulator renders (320 x 240 mono, {FRAMES_PER_SKY} frames each):")
    right_total = 0
    for kind, (clouds, right, night) in RENDERED_SKIES.items():
        said: dict[str, int] = {}
        for i in range(FRAMES_PER_SKY):
            when = night + timedelta(minutes=30 * i)
            exposure = demo_classifier_exposure(renderer, when)
            picture = demo_classifier_picture(renderer, when, clouds(i), exposure, seed=i)
            label = classifier.classify(picture).label
            said[label] = said.get(label, 0) + 1
        correct = sum(n for label, n in said.items() if label in right)
        right_total += correct
        answers = ", ".join(f"{label} {n}" for label, n in sorted(said.items()))
        print(f"    {kind:22s} accuracy {correct / FRAMES_PER_SKY:.2f}  ({answers}; right: {'/'.join(sorted(right))})")
    total = FRAMES_PER_SKY * len(RENDERED_SKIES)
    print(f"    all skies: accuracy {right_total / total:.2f} ({right_total} of {total})")


def _blob_detector() -> cv2.SimpleBlobDetector:
    params = cv2.SimpleBlobDetector_Params()
    params.filterByColor, params.blobColor = True, 255
    params.minThreshold, params.maxThreshold, params.thresholdStep = 20, 255, 20
    params.filterByArea, params.minArea = True, 2
    params.filterByCircularity = params.filterByConvexity = params.filterByInertia = False
    return cv2.SimpleBlobDetector_create(params)


if __name__ == "__main__":
    main()
