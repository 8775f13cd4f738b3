"""Names on the sky against the sky simulator's truth: star labels on the stars the simulator drew,
the Moon on its rendered disc, the planets and the Moon where PyEphem puts them (the
simulator renders no planets), labels that never overlap or leave the image circle, and layers that
are off draw nothing. Measured figures are printed (``-s``)."""

from __future__ import annotations

import itertools
import json
import logging
import os
import time
from datetime import UTC, datetime

import numpy as np
import pytest

from obsy.config import (
    AllskyOverlayStage,
    AllskySkyNamesConfig,
    ConfigError,
    MissingSection,
    ObsyConfig,
    SiteConfig,
    load_config,
)
from obsy.skymodel import SkyModel, load_bright_stars
from obsy_allsky.backend import NumpyBackend
from obsy_allsky.pipeline.overlay import FrameInfo, image_circle, model_fits_picture, names_on_sky, overlay
from obsy_allsky.pipeline.skynames import (
    Circle,
    SkyLabel,
    boxes_overlap,
    load_constellations,
    place_labels,
    sky_scene,
)
from obsy_allsky.skysource import SkyModelSource, configured_model, names_wanted
from obsy_skysim.allsky import AllskyRenderer, Site
from obsy_skysim.sensor import SensorSpec
from tests.support.skysim import LENS, SITE

NIGHT = datetime(2026, 1, 15, 22, 0, tzinfo=UTC)  # Jupiter high in Gemini, the Moon down
FULL_MOON = datetime(2026, 1, 3, 22, 0, tzinfo=UTC)  # full Moon high in Gemini
MANY_PLANETS = datetime(2026, 9, 25, 2, 0, tzinfo=UTC)  # Mars, Jupiter and Saturn up, the Moon too
PLANETS = ("mercury", "venus", "mars", "jupiter", "saturn", "uranus", "neptune")
WIDTH, HEIGHT = 1280, 960
SITE_CONFIG = SiteConfig(latitude=SITE[0], longitude=SITE[1], elevation=SITE[2])
# The lens's horizon as the image circle (LENS is off-centre), in the pipeline's fractions.
CIRCLE_CENTER = ((LENS.zenith_x + 0.5) / WIDTH, (LENS.zenith_y + 0.5) / HEIGHT)
CIRCLE_RADIUS = LENS.horizon_radius() / min(WIDTH, HEIGHT)
CIRCLE = image_circle(HEIGHT, WIDTH, CIRCLE_CENTER, CIRCLE_RADIUS)
LAYERS = ("stars", "planets", "moon", "constellation_lines", "constellation_names", "altitude_circles", "equator")


@pytest.fixture(scope="module")
def renderer() -> AllskyRenderer:
    return AllskyRenderer(Site(*SITE), SensorSpec(width=WIDTH, height=HEIGHT, bayer=None), LENS)


def settings(**changes) -> AllskySkyNamesConfig:
    return AllskySkyNamesConfig.model_validate(changes)


def only(layer: str) -> AllskySkyNamesConfig:
    """Every layer off but ``layer``."""
    values: dict = {name: False for name in LAYERS}
    values["altitude_circles"] = []
    values[layer] = [30.0, 60.0] if layer == "altitude_circles" else True
    return settings(**values)


def star_anchors(model: SkyModel, when: datetime, **changes) -> dict[int, tuple[float, float]]:
    """Hipparcos id -> anchor pixel of each star label."""
    scene = sky_scene(model, SITE_CONFIG, when, settings(star_magnitude=3.0, max_stars=200, **changes), CIRCLE)
    catalogue = load_bright_stars()
    by_name = {str(n): int(h) for n, h in zip(catalogue.names, catalogue.ids, strict=True) if n}
    return {by_name[label.text]: (label.x, label.y) for label in scene.labels if label.kind == "star"}


def offsets_from_truth(anchors: dict[int, tuple[float, float]], truth) -> np.ndarray:
    where = {int(h): (x, y) for h, x, y in zip(truth.ids, truth.x, truth.y, strict=True)}
    return np.array([np.hypot(ax - where[h][0], ay - where[h][1]) for h, (ax, ay) in anchors.items()])


# --- where the labels point --------------------------------------------------------------


def test_star_labels_sit_on_the_stars_the_simulator_drew(renderer: AllskyRenderer) -> None:
    frame = renderer.render(NIGHT, 10.0, 0.0, seed=3)
    anchors = star_anchors(LENS, NIGHT)
    assert len(anchors) >= 25, "too few named stars up to judge"
    error = offsets_from_truth(anchors, frame.stars)
    print(f"star labels, simulator's lens: {len(error)} stars, max {error.max():.4f} px from the truth")
    assert error.max() < 2.0


@pytest.mark.slow
def test_star_labels_sit_on_the_stars_with_the_model_fitted_on_the_frame(renderer: AllskyRenderer) -> None:
    """As in the service: clouddetect fits the model on the frame, the overlay names through it."""
    from obsy_clouddetect.transmission.analyser import TransmissionAnalyser

    frame = renderer.render(NIGHT, 20.0, 50.0, seed=11)
    analyser = TransmissionAnalyser(load_bright_stars(), *SITE)
    analyser.analyse(frame.image, NIGHT, 20.0, 50.0)
    assert analyser.model is not None, "clouddetect found no model on the clear frame"
    error = offsets_from_truth(star_anchors(analyser.model, NIGHT), frame.stars)
    print(f"star labels, fitted lens: {len(error)} stars, median {np.median(error):.3f} px, max {error.max():.3f} px")
    assert error.max() < 2.0


def test_the_moon_label_sits_on_the_rendered_moon(renderer: AllskyRenderer) -> None:
    frame = renderer.render(FULL_MOON, 0.001, 0.0, seed=1)
    scene = sky_scene(LENS, SITE_CONFIG, FULL_MOON, only("moon"), CIRCLE)
    (moon,) = [label for label in scene.labels if label.kind == "moon"]
    # The disc's light-weighted centre, sky taken off, in a box around the brightest pixel.
    image = frame.image.astype(float)
    by, bx = np.unravel_index(np.argmax(image), image.shape)
    half = 12
    box = image[by - half : by + half + 1, bx - half : bx + half + 1]
    light = np.clip(box - np.median(image), 0, None)
    yy, xx = np.mgrid[-half : half + 1, -half : half + 1]
    cx, cy = bx + (light * xx).sum() / light.sum(), by + (light * yy).sum() / light.sum()
    error = float(np.hypot(moon.x - cx, moon.y - cy))
    print(f"Moon label: {error:.3f} px from the rendered disc's centre")
    assert error < 2.0


@pytest.mark.parametrize("when", [NIGHT, MANY_PLANETS])
def test_planet_and_moon_labels_sit_where_pyephem_puts_them(when: datetime) -> None:
    """The simulator renders no planets: PyEphem (its own planetary theory and refraction, nothing
    shared with astropy) through the lens, written out here, is the reference."""
    ephem = pytest.importorskip("ephem", reason="PyEphem (requirements-dev.txt) is the independent reference")
    scene = sky_scene(LENS, SITE_CONFIG, when, settings(planet_list=list(PLANETS)), CIRCLE)
    bodies = {label.text: label for label in scene.labels if label.kind in ("planet", "moon")}
    assert "Jupiter" in bodies, "the test needs Jupiter up"
    observer = ephem.Observer()
    observer.lat, observer.lon, observer.elevation = str(SITE[0]), str(SITE[1]), SITE[2]
    observer.date = when.replace(tzinfo=None)
    observer.pressure, observer.temp = 1013.25 * np.exp(-SITE[2] / 8434.0), 10.0
    for name, label in bodies.items():
        body = getattr(ephem, name)(observer)
        theta = np.pi / 2 - float(body.alt)
        r = LENS.scale * theta * (1 + LENS.distortion * theta**2)  # equidistant, distorted
        phi = float(body.az) + np.radians(LENS.rotation)
        x, y = LENS.zenith_x - r * np.sin(phi), LENS.zenith_y - r * np.cos(phi)
        error = float(np.hypot(label.x - x, label.y - y))
        print(f"{when:%Y-%m-%d %H:%M} {name}: {error:.3f} px from PyEphem's position")
        assert error < 2.0
    # Every planet PyEphem puts well inside the view is named.
    for name in PLANETS:
        if np.degrees(float(getattr(ephem, name.capitalize())(observer).alt)) > 10:
            assert name.capitalize() in bodies


def test_constellation_lines_stop_short_of_their_stars() -> None:
    """So that they neither hide a star nor add light to it (clouddetect measures the same pictures)."""
    scene = sky_scene(LENS, SITE_CONFIG, NIGHT, only("constellation_lines"), CIRCLE, star_gap_px=6.0)
    assert len(scene.figures) >= 30
    catalogue = load_bright_stars()
    ids = {h for figure in load_constellations() for chain in figure.chains for h in chain}
    rows = np.isin(catalogue.ids, list(ids))
    alt, az = catalogue.brighter_than(99).altaz(*SITE, NIGHT)
    x, y = LENS.altaz_to_pixel(alt[rows], az[rows])
    points = np.vstack(scene.figures)
    nearest = np.min(np.hypot(points[:, 0, None] - x[None, :], points[:, 1, None] - y[None, :]), axis=1)
    assert nearest.min() > 5.9


# --- placement ---------------------------------------------------------------------------


def crowded() -> tuple[list, Circle, list]:
    """Every layer on and names down to magnitude 4: more labels than fit."""
    stage = AllskyOverlayStage.model_validate(
        {"stage": "overlay", "sky": {"star_magnitude": 4.0, "max_stars": 300}, "show": ["time"]}
    )
    image = np.zeros((HEIGHT, WIDTH, 3), np.float32)
    info = FrameInfo(taken_at=NIGHT, sky_model=LENS, site=SITE_CONFIG)
    text_px = stage.text_height * HEIGHT
    from obsy_allsky.pipeline.overlay import cardinal_texts, text_box

    cardinals = cardinal_texts(
        HEIGHT, WIDTH, CIRCLE_CENTER, CIRCLE_RADIUS, rotation=0.0, mirrored=False, inset_px=text_px * 1.2
    )
    obstacles = [text_box(t, text_px) for t in cardinals]
    start = time.perf_counter()
    placed = names_on_sky(NumpyBackend(), image, stage.sky, info, text_px, obstacles=obstacles, circle=CIRCLE)
    print(f"names on the sky: {len(placed)} labels placed in {1000 * (time.perf_counter() - start):.0f} ms")
    return placed, CIRCLE, obstacles


def test_labels_never_overlap_each_other_or_the_other_texts_and_stay_in_the_circle() -> None:
    placed, circle, obstacles = crowded()
    assert len(placed) >= 40
    for a, b in itertools.combinations(placed, 2):
        assert not boxes_overlap(a.box, b.box), (a.label.text, b.label.text)
    for p in placed:
        assert not any(boxes_overlap(p.box, o) for o in obstacles), p.label.text
        x0, y0, x1, y1 = p.box
        corners = np.array([[x0, y0], [x1, y0], [x0, y1], [x1, y1]])
        assert circle.inside(corners[:, 0], corners[:, 1]).all(), p.label.text
        assert x0 >= 0 and y0 >= 0 and x1 <= WIDTH and y1 <= HEIGHT


def test_placement_is_greedy_keeps_clear_of_other_anchors_and_skips_what_cannot_be_placed() -> None:
    circle = Circle(100.0, 100.0, 100.0)
    labels = [
        SkyLabel("Bright", 100.0, 100.0, "star", 0.0),
        SkyLabel("Faint", 110.0, 100.0, "star", 3.0),  # right of the bright one: both go elsewhere
        SkyLabel("Rim", 100.0, 195.0, "star", 4.0),  # at the circle's bottom, too wide to fit anywhere
    ]

    def measure(text: str) -> tuple[float, float, float]:
        return (150.0 if text == "Rim" else 40.0), 10.0, 3.0

    placed = place_labels(labels, measure, circle, (200, 200), gap=3.0)
    assert [p.label.text for p in placed] == ["Bright", "Faint"]
    bright, faint = placed
    assert not boxes_overlap(bright.box, faint.box)
    assert bright.box[2] <= 100 or bright.box[1] >= 100 or bright.box[3] <= 100  # not over the faint star
    assert not (bright.box[0] <= 110 <= bright.box[2] and bright.box[1] <= 100 <= bright.box[3])
    assert not (faint.box[0] <= 100 <= faint.box[2] and faint.box[1] <= 100 <= faint.box[3])


# --- layers switched off ------------------------------------------------------------------


@pytest.mark.parametrize("layer", LAYERS)
def test_a_layer_switched_off_draws_none_of_itself(layer: str) -> None:
    when = FULL_MOON if layer == "moon" else NIGHT

    def draw(sky: AllskySkyNamesConfig) -> np.ndarray:
        image = np.zeros((HEIGHT, WIDTH, 3), np.float32)
        info = FrameInfo(taken_at=when, sky_model=LENS, site=SITE_CONFIG)
        names_on_sky(NumpyBackend(), image, sky, info, 24.0, obstacles=[], circle=CIRCLE)
        return image

    alone = only(layer)
    assert draw(alone).max() > 0.5, f"{layer} alone draws nothing"
    off = alone.model_copy(update={layer: [] if layer == "altitude_circles" else False})
    assert draw(off).max() == 0.0
    # And with every other layer on, the scene holds none of it.
    everything_but = settings(**{layer: [] if layer == "altitude_circles" else False})
    scene = sky_scene(LENS, SITE_CONFIG, when, everything_but, CIRCLE)
    kinds = {label.kind for label in scene.labels}
    expected_gone = {
        "stars": "star",
        "planets": "planet",
        "moon": "moon",
        "constellation_names": "constellation",
    }.get(layer)
    if expected_gone:
        assert expected_gone not in kinds
    if layer == "constellation_lines":
        assert scene.figures == []
    if layer in ("altitude_circles", "equator"):
        full = sky_scene(LENS, SITE_CONFIG, when, settings(), CIRCLE)
        assert len(scene.grid) < len(full.grid)


def test_names_switched_off_or_without_a_model_draw_nothing() -> None:
    stage = AllskyOverlayStage.model_validate({"stage": "overlay", "show": [], "cardinals": False})
    for info in (
        FrameInfo(taken_at=NIGHT, site=SITE_CONFIG),  # no model
        FrameInfo(taken_at=NIGHT, sky_model=LENS, site=None),  # no site
    ):
        image = np.zeros((HEIGHT, WIDTH, 3), np.float32)
        assert (
            overlay(
                NumpyBackend(),
                image,
                stage,
                info,
                stars=None,
                sqm=None,
                circle_center=CIRCLE_CENTER,
                circle_radius=CIRCLE_RADIUS,
            ).max()
            == 0.0
        )
    disabled = AllskyOverlayStage.model_validate(
        {"stage": "overlay", "show": [], "cardinals": False, "sky": {"enabled": False}}
    )
    image = np.zeros((HEIGHT, WIDTH, 3), np.float32)
    info = FrameInfo(taken_at=NIGHT, sky_model=LENS, site=SITE_CONFIG)
    out = overlay(
        NumpyBackend(),
        image,
        disabled,
        info,
        stars=None,
        sqm=None,
        circle_center=CIRCLE_CENTER,
        circle_radius=CIRCLE_RADIUS,
    )
    assert out.max() == 0.0


# --- data and configuration -----------------------------------------------------------------


def test_every_constellation_star_is_in_the_catalogue() -> None:
    ids = set(load_bright_stars().ids.tolist())
    figures = load_constellations()
    assert len(figures) >= 20
    for figure in figures:
        for chain in figure.chains:
            assert set(chain) <= ids, figure.abbr


def test_a_wrong_key_in_the_names_settings_is_a_clear_error(tmp_path) -> None:
    path = tmp_path / "obsy.yaml"
    path.write_text(
        "site: {latitude: 48.2, longitude: 16.4}\n"
        "allsky:\n  pipeline:\n    finish:\n      - stage: overlay\n        sky: {stras: false}\n"
    )
    with pytest.raises(ConfigError) as caught:
        load_config(path, env={})
    assert str(caught.value).startswith("unknown key 'allsky.pipeline.finish.0.overlay.sky.stras' in config file")
    assert "(did you mean 'allsky.pipeline.finish.0.overlay.sky.stars'?)" in str(caught.value)
    path.write_text(
        "site: {latitude: 48.2, longitude: 16.4}\n"
        "allsky:\n  pipeline:\n    finish:\n      - stage: overlay\n        sky: {altitude_circles: [30, 95]}\n"
    )
    with pytest.raises(ConfigError, match="altitude circle must be at 0 to 90 degrees"):
        load_config(path, env={})


# --- where the model comes from -------------------------------------------------------------


def config_with(tmp_path, **sky) -> ObsyConfig:
    return ObsyConfig.model_validate(
        {
            "site": {"latitude": SITE[0], "longitude": SITE[1]},
            "data_dir": str(tmp_path),
            "allsky": {"pipeline": {"finish": [{"stage": "overlay", "sky": sky}]}},
        }
    )


def test_the_fitted_model_comes_first_then_the_fixed_one_then_none_said_once(tmp_path, caplog) -> None:
    log = logging.getLogger("test.skynames")
    caplog.set_level(logging.INFO, logger="test.skynames")
    source = SkyModelSource(config_with(tmp_path), log)
    assert source.current() is None and source.current() is None
    missing = [r for r in caplog.records if "no sky model for names on the sky" in r.getMessage()]
    assert len(missing) == 1
    assert source.source == "none"

    fixed = {"zenith_x": 600.0, "zenith_y": 470.0, "scale": 300.0, "projection": "equisolid"}
    source = SkyModelSource(config_with(tmp_path, sky_model=fixed), log)
    assert source.current() == SkyModel(**fixed)
    assert source.source == "the overlay's sky.sky_model"

    path = tmp_path / "clouddetect" / "sky_model.json"
    path.parent.mkdir()
    path.write_text(json.dumps(LENS.to_dict()))
    assert source.current() == LENS
    assert source.source == "clouddetect's fitted model"
    refit = SkyModel(650.0, 470.0, 291.0, 36.5, False, "equidistant", 0.03)
    path.write_text(json.dumps(refit.to_dict()))
    os.utime(path, ns=(time.time_ns() + 10**9, time.time_ns() + 10**9))  # a new stamp even on coarse clocks
    assert source.current() == refit
    path.write_text("{not json")
    os.utime(path, ns=(time.time_ns() + 2 * 10**9, time.time_ns() + 2 * 10**9))
    assert source.current() == SkyModel(**fixed)  # a broken file: the fixed model serves


def test_clouddetects_fixed_model_serves_when_the_overlay_has_none(tmp_path) -> None:
    fixed = {"zenith_x": 600.0, "zenith_y": 470.0, "scale": 300.0}
    config = ObsyConfig.model_validate(
        {
            "site": {"latitude": SITE[0], "longitude": SITE[1]},
            "data_dir": str(tmp_path),
            "clouddetect": {"transmission": {"sky_model": fixed}},
            "allsky": {"pipeline": {"finish": [{"stage": "overlay"}]}},
        }
    )
    assert names_wanted(config)
    assert configured_model(config) == (SkyModel(**fixed), "clouddetect.transmission.sky_model")
    assert not names_wanted(config_with(tmp_path, enabled=False))
    assert not names_wanted(ObsyConfig.model_validate({"site": {"latitude": 0, "longitude": 0}}))  # no overlay


def test_clouddetects_fixed_model_serves_where_clouddetect_is_not_installed(tmp_path) -> None:
    """The allsky image has no obsy-clouddetect: its section is kept as written, allsky validates the model."""
    fixed = {"zenith_x": 600.0, "zenith_y": 470.0, "scale": 300.0}
    config = ObsyConfig.model_validate({"site": {"latitude": SITE[0], "longitude": SITE[1]}})

    def without_clouddetect(written: dict) -> ObsyConfig:
        return config.model_copy(update={"clouddetect": MissingSection("clouddetect", "obsy-clouddetect", written)})

    written = {"transmission": {"sky_model": fixed}}
    assert configured_model(without_clouddetect(written)) == (SkyModel(**fixed), "clouddetect.transmission.sky_model")
    assert configured_model(without_clouddetect({})) == (None, "")
    with pytest.raises(
        ConfigError, match=r"invalid value for 'clouddetect\.transmission\.sky_model\.scale': .*greater than 0"
    ):
        configured_model(without_clouddetect({"transmission": {"sky_model": {**fixed, "scale": -1}}}))


def test_a_model_of_another_picture_size_draws_nothing_and_says_so_once(caplog) -> None:
    """A model fitted on pictures twice as large (binning changed): its zenith lies off this picture."""
    big = SkyModel(2 * LENS.zenith_x, 2 * LENS.zenith_y, 2 * LENS.scale, LENS.rotation, False, "equidistant")
    caplog.set_level(logging.WARNING, logger="obsy.allsky.pipeline")
    for _ in range(2):
        image = np.zeros((HEIGHT // 2, WIDTH // 2, 3), np.float32)
        info = FrameInfo(taken_at=NIGHT, sky_model=big, site=SITE_CONFIG)
        placed = names_on_sky(NumpyBackend(), image, settings(), info, 12.0, obstacles=[], circle=CIRCLE)
        assert placed == [] and image.max() == 0.0
    assert len([r for r in caplog.records if "does not fit a 640x480 picture" in r.getMessage()]) == 1
    assert model_fits_picture(LENS, WIDTH, HEIGHT)
