"""Colour and stretch against truth: a synthetic gradient removed to within the noise, the sky
neutralised, the screen transfer function as published, the arcsinh stretch's formula, and the
colour of simulated stars through alignment, combination (RGB, LRGB, HOO) and white balance."""

from __future__ import annotations

import numpy as np
import pytest
import sep
from astropy.stats import sigma_clipped_stats

from obsy_imaging.colour import (
    ColourError,
    background_levels,
    channels_for,
    compose,
    fit_background,
    neutralise_background,
    remove_gradient,
)
from obsy_imaging.colour.align import AlignmentError, align_stacks
from obsy_imaging.stretch import arcsinh_stretch, autostretch, autostretch_colour, midtones_transfer, stretch_parameters
from tests.support.stacking import bright_isolated_stars, offset_pointing, render

SHAPE = (600, 800)
NOISE = 10.0


def star_field(seed: int = 1, level: float = 1000.0) -> np.ndarray:
    """Sky with Gaussian noise and 150 Gaussian stars (FWHM 3 px)."""
    rng = np.random.default_rng(seed)
    image = rng.normal(level, NOISE, SHAPE)
    yy, xx = np.mgrid[: SHAPE[0], : SHAPE[1]]
    stars = np.random.default_rng(99)
    for x, y, peak in zip(stars.uniform(10, SHAPE[1] - 10, 150), stars.uniform(10, SHAPE[0] - 10, 150),
                          stars.uniform(100, 5000, 150), strict=True):  # fmt: skip
        box = (slice(int(y) - 8, int(y) + 9), slice(int(x) - 8, int(x) + 9))
        image[box] += peak * np.exp(-((xx[box] - x) ** 2 + (yy[box] - y) ** 2) / (2 * 1.27**2))
    return image.astype(np.float32)


def gradient(order: int = 2, amplitude: float = 300.0, shape: tuple[int, int] = SHAPE) -> np.ndarray:
    """A smooth sky slope: a plane and (order 2) a quadric, mean about zero."""
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    x, y = 2 * xx / (shape[1] - 1) - 1, 2 * yy / (shape[0] - 1) - 1
    surface = 0.6 * x - 0.3 * y + (0.4 * x * x + 0.2 * x * y - 0.3 * y * y if order >= 2 else 0.0)
    return (amplitude * surface).astype(np.float32)


def cell_medians(image: np.ndarray, mesh: int = 50) -> np.ndarray:
    h, w = image.shape
    return np.array(
        [[np.median(image[r : r + mesh, c : c + mesh]) for c in range(0, w, mesh)] for r in range(0, h, mesh)]
    )


def test_a_synthetic_gradient_is_removed_to_within_the_noise() -> None:
    clean = star_field()
    slope = gradient()
    model = fit_background(clean + slope, order=2)
    surface = model.evaluate()
    # The fitted surface is the true one (both about their mean) to a small part of the pixel noise.
    error = (surface - surface.mean()) - (slope - slope.mean())
    assert np.max(np.abs(error)) < 0.15 * NOISE and np.std(error) < 0.05 * NOISE  # 0.93 and 0.36 ADU here
    assert model.cells_used > 50
    corrected, _ = remove_gradient(clean + slope, order=2)
    # What is left across the frame is what the clean frame has: cell medians as flat as its own.
    assert np.std(cell_medians(corrected)) < 1.5 * np.std(cell_medians(clean))
    assert np.std(cell_medians(clean + slope)) > 50 * np.std(cell_medians(clean))
    # The sky's level is kept: the clean sky plus the slope's mean.
    assert float(np.median(corrected)) == pytest.approx(float(np.median(clean) + slope.mean()), abs=0.1 * NOISE)


def test_a_bright_extended_object_does_not_bend_the_fitted_sky() -> None:
    image = star_field(2) + gradient(order=1)
    yy, xx = np.mgrid[: SHAPE[0], : SHAPE[1]]
    image += (40.0 * np.exp(-((xx - 400) ** 2 + (yy - 300) ** 2) / (2 * 60.0**2))).astype(np.float32)  # a galaxy
    model = fit_background(image, order=1)
    error = (model.evaluate() - model.evaluate().mean()) - (gradient(order=1) - gradient(order=1).mean())
    assert np.max(np.abs(error)) < 0.5 * NOISE
    assert model.cells_dropped > 0


def test_bad_input_to_the_background_fit_is_named() -> None:
    with pytest.raises(ValueError, match="order must be 0 to 4"):
        fit_background(star_field(), order=7)
    with pytest.raises(ValueError, match="2-D image"):
        fit_background(np.zeros((4, 4, 3)))
    with pytest.raises(ValueError, match="no finite pixels"):
        fit_background(np.full(SHAPE, np.nan, np.float32))


def test_neutralised_background_channels_are_equal_within_the_noise() -> None:
    channels = [star_field(3, 1000.0) + gradient(), star_field(4, 650.0) - gradient(1, 80), star_field(5, 1400.0)]
    channels = [remove_gradient(c)[0] for c in channels]
    before = background_levels(channels)
    assert np.ptp(before) > 500
    neutral, levels = neutralise_background(channels)
    assert np.allclose(levels, before)
    after = background_levels(neutral)
    assert np.ptp(after) < 0.1 * NOISE  # the median of ~400,000 sky pixels: far inside one pixel's noise
    # Measured otherwise too (astropy's sigma-clipped median, stars and all): the same sky in every channel.
    clipped = [sigma_clipped_stats(c, sigma=3.0)[1] for c in neutral]
    assert np.ptp(clipped) < 0.1 * NOISE
    assert float(np.mean(after)) == pytest.approx(float(np.mean(before)), abs=0.1 * NOISE)


def test_the_screen_transfer_function_is_pixinsights_published_formula() -> None:
    # Known input on 0..1: median 0.10, MAD 0.01 (a third of the pixels each at 0.09, 0.10, 0.11).
    values = np.concatenate([[0.0, 1.0], np.repeat([0.09, 0.10, 0.11], 3333)])
    image = values.reshape(1, -1).astype(np.float64)
    madn = 1.4826 * 0.01
    c0 = 0.10 - 2.8 * madn
    m = (0.25 - 1) * (0.10 - c0) / ((2 * 0.25 - 1) * (0.10 - c0) - 0.25)  # MTF(0.25, median - c0)
    p = stretch_parameters(image)
    assert (p.low, p.high) == (0.0, 1.0)
    assert p.shadows == pytest.approx(c0, rel=1e-9) and p.midtones == pytest.approx(m, rel=1e-9)
    stretched = autostretch(image)
    for x in (0.09, 0.10, 0.11, 1.0):
        expected = midtones_transfer(m, (x - c0) / (1 - c0))
        assert stretched[0, np.flatnonzero(values == x)[0]] == pytest.approx(expected, rel=1e-5)
    assert stretched[0, 0] == 0.0  # below the black point
    # The same on another scale: the stretch is on the image's own 0..1 range.
    assert np.allclose(autostretch(image * 5000 + 300), stretched, atol=1e-5)
    # Linked colour: a grey image is stretched as its mono self; each channel alone as a mono image.
    grey = np.repeat(image[..., None], 3, axis=2)
    assert np.allclose(autostretch_colour(grey), np.repeat(stretched[..., None], 3, axis=2), atol=1e-6)
    tinted = np.stack([image, image * 0.5 + 0.5, image], axis=2)
    unlinked = autostretch_colour(tinted, linked=False)
    assert np.allclose(unlinked[..., 1], autostretch(tinted[..., 1]), atol=1e-6)


def test_the_arcsinh_stretch_follows_its_formula_and_keeps_colour_ratios() -> None:
    x = np.linspace(0, 1, 101).reshape(1, -1)
    out = arcsinh_stretch(x, beta=50.0, black=0.0, high=1.0)
    assert np.allclose(out, np.arcsinh(50 * x) / np.arcsinh(50.0), atol=1e-6)
    assert out[0, 1] > 5 * x[0, 1]  # the faint end lifted: about beta / asinh(beta) = 10.9 times
    rng = np.random.default_rng(1)
    rgb = rng.uniform(0.001, 0.2, (20, 30, 3)) * np.array([1.0, 0.6, 0.3])
    stretched = arcsinh_stretch(rgb, beta=20.0, black=0.0, high=1.0)
    assert np.allclose(stretched[..., 1] / stretched[..., 0], rgb[..., 1] / rgb[..., 0], rtol=1e-4)
    assert np.all(stretched > rgb)
    with pytest.raises(ValueError, match="must be positive"):
        arcsinh_stretch(x, beta=0)


def test_palettes_take_their_filters_and_name_what_is_missing() -> None:
    assert channels_for("sho", ["OIII", "H-alpha", "S2"]) == {"SII": "S2", "Ha": "H-alpha", "OIII": "OIII"}
    assert channels_for("hoo", ["Ha", "O3", "L"]) == {"Ha": "Ha", "OIII": "O3"}
    assert channels_for("lrgb", ["Red", "Green", "Blue", "Lum"])["L"] == "Lum"
    with pytest.raises(ColourError, match=r"palette sho needs a stack of SII; there are stacks of Ha, OIII"):
        channels_for("sho", ["Ha", "OIII"])
    with pytest.raises(ColourError, match="unknown palette 'xyz'"):
        channels_for("xyz", ["R"])


# --- the colour of simulated stars -----------------------------------------------------------
#: Each filter's share of the stars' light (a star of known colour: all the simulator's are),
#: its sky level and its pointing (east, north, position angle).
COLOUR = {"R": 1.0, "G": 0.8, "B": 0.5}
SKY = {"R": 300.0, "G": 150.0, "B": 420.0}
POINTING = {"R": (14.0, -9.0, 0.0), "G": (0.0, 0.0, 0.0), "B": (-12.0, 16.0, 180.0), "L": (6.0, 7.0, 0.0)}


@pytest.fixture(scope="module")
def filter_stacks():
    """Mono 'stacks' per filter: the simulator's field scaled to the filter's share, its own sky
    level and gradient, its own framing. The green one's truth is the reference grid's."""
    stacks, truth = {}, None
    for i, (name, (east, north, angle)) in enumerate(POINTING.items()):
        frame = render(offset_pointing(east, north), position_angle=angle, seed=900 + i)
        background = float(np.median(frame.image))
        share = COLOUR.get(name, 1.0)
        image = (frame.image - background) * share + SKY.get(name, 500.0)
        if name != "G":
            image += gradient(order=1, amplitude=30.0, shape=image.shape)
        stacks[name] = image.astype(np.float32)
        if name == "G":
            truth = frame
    return stacks, truth


def star_colours(rgb: np.ndarray, truth) -> np.ndarray:
    """Per bright isolated star (at its true place on the green grid): each channel's light over green's."""
    pick = bright_isolated_stars(truth, margin=80)
    sums = []
    for i in range(3):
        data = np.ascontiguousarray(np.nan_to_num(rgb[..., i]), dtype=np.float32)
        back = sep.Background(data, bw=64, bh=64).back()
        flux, _e, _f = sep.sum_circle(data - back, truth.truth.x[pick], truth.truth.y[pick], 8.0)
        sums.append(flux)
    sums = np.array(sums)
    return sums / sums[1]


def test_a_star_of_known_colour_keeps_its_channel_ratios(filter_stacks) -> None:
    stacks, truth = filter_stacks
    plain = compose({k: stacks[k] for k in "RGB"}, "rgb", gradient_order=1, white="none")
    ratios = star_colours(plain.image, truth)
    assert ratios.shape[1] >= 10
    assert np.median(ratios[0]) == pytest.approx(COLOUR["R"] / COLOUR["G"], rel=0.02)
    assert np.median(ratios[2]) == pytest.approx(COLOUR["B"] / COLOUR["G"], rel=0.02)
    assert np.ptp(background_levels([plain.image[..., i] for i in range(3)])) < 1.0  # the sky is grey
    assert np.allclose(plain.sky_levels, [SKY["R"], SKY["G"], SKY["B"]], atol=2.0)

    # White balance on the stars: a typical star white, k the inverse of the filters' shares (G = 1).
    white = compose({k: stacks[k] for k in "RGB"}, "rgb", gradient_order=1, white="stars")
    assert white.white_balance == pytest.approx([0.8, 1.0, 1.6], rel=0.02)
    assert np.median(star_colours(white.image, truth), axis=1) == pytest.approx([1.0, 1.0, 1.0], rel=0.02)

    # LRGB: the luminance from L, the colour ratios still those of the stars.
    lrgb = compose(stacks, "lrgb", gradient_order=1, white="none")
    assert lrgb.filters["L"] == "L"
    ratios = np.median(star_colours(lrgb.image, truth), axis=1)
    assert ratios == pytest.approx([1.25, 1.0, 0.625], rel=0.03)

    # A stretched colour JPEG of it: the sky grey (channels equal), on the target background.
    stretched = autostretch_colour(white.image)
    sky = np.median(stretched.reshape(-1, 3), axis=0)
    assert np.ptp(sky) < 0.01 and float(np.mean(sky)) == pytest.approx(0.25, abs=0.02)


def test_hoo_puts_oiii_in_green_and_blue(filter_stacks) -> None:
    stacks, _ = filter_stacks
    hoo = compose({"Ha": stacks["R"], "OIII": stacks["G"]}, "hoo", gradient_order=None, white="none")
    assert hoo.filters == {"Ha": "Ha", "OIII": "OIII"}
    assert np.array_equal(hoo.image[..., 1], hoo.image[..., 2], equal_nan=True)


def test_a_stack_of_another_field_cannot_be_aligned_and_is_named(filter_stacks) -> None:
    stacks, _ = filter_stacks
    fog = np.random.default_rng(2).normal(500.0, 10.0, stacks["G"].shape).astype(np.float32)
    with pytest.raises(AlignmentError, match="B cannot be aligned onto G"):
        align_stacks({"G": stacks["G"], "B": fog}, "G")
    with pytest.raises(AlignmentError, match="stacks of one camera"):
        align_stacks({"G": stacks["G"], "B": stacks["B"][:500]}, "G")


def test_the_chain_in_bands_and_on_binned_statistics_gives_the_same_colours(filter_stacks, monkeypatch, tmp_path):
    """The chain works a band of rows at a time: bands of 37 rows give the image of one band, to float
    rounding. A large image takes its statistics from a binned copy: forced here (2 x 2), the white
    balance and the stars' colours still meet the truth as tightly as on the full-size statistics."""
    from astropy.io import fits

    from obsy_imaging.colour import bands, write_colour_image
    from obsy_imaging.stacking import fits_reader

    stacks, truth = filter_stacks
    width = stacks["G"].shape[1]
    whole = compose(stacks, "lrgb", gradient_order=1, white="stars")
    assert whole.band == stacks["G"].shape[0]  # small: one band
    banded = compose(stacks, "lrgb", gradient_order=1, white="stars", band_bytes=37 * width * 4, scratch=tmp_path)
    assert banded.band == 37
    assert np.array_equal(banded.white_balance, whole.white_balance)
    assert np.allclose(banded.image, whole.image, rtol=1e-5, atol=1e-3, equal_nan=True)
    assert [p.path.parent.parent for p in banded.planes] == [tmp_path] * 3  # its scratch where asked
    banded.close()
    assert list(tmp_path.iterdir()) == []

    monkeypatch.setattr(bands, "BINNED_PIXELS", stacks["G"].size // 4)
    for name, image in stacks.items():  # from FITS files, as the project stacker reads them
        fits.PrimaryHDU(image).writeto(tmp_path / f"{name}.fits")
    sources = {name: fits_reader(tmp_path / f"{name}.fits") for name in "RGB"}
    binned = write_colour_image(
        sources, "rgb", tmp_path / "rgb.fits", fits.Header({"OBJECT": "test"}), gradient_order=1
    )
    assert binned.binned.shape == (stacks["G"].shape[0] // 2, width // 2, 3)
    assert binned.white_balance == pytest.approx([0.8, 1.0, 1.6], rel=0.02)
    assert np.median(star_colours(binned.image, truth), axis=1) == pytest.approx([1.0, 1.0, 1.0], rel=0.02)
    with fits.open(tmp_path / "rgb.fits") as hdus:  # the cube written a band at a time is the image
        assert hdus[0].header["OBJECT"] == "test" and hdus[0].header["WBAL_B"] == pytest.approx(1.6, rel=0.02)
        assert np.array_equal(np.moveaxis(hdus[0].data, 0, 2), binned.image, equal_nan=True)
    from PIL import Image

    sample = np.asarray(Image.open(tmp_path / "rgb.jpg"), dtype=float)
    expected = autostretch_colour(binned.image) * 255.0  # stretched in bands as the whole image is
    assert sample.shape == expected.shape
    # JPEG's loss on noise is large per pixel: compared on 8 x 8 blocks' means and the channels' medians.
    blocks = [a.reshape(100, 8, 125, 8, 3).mean(axis=(1, 3)) for a in (sample, expected)]
    assert np.median(np.abs(blocks[0] - blocks[1])) <= 2.0
    assert np.median(sample, axis=(0, 1)) == pytest.approx(np.median(expected, axis=(0, 1)), abs=3.0)
    assert (tmp_path / "rgb.thumb.jpg").is_file()


def test_a_colour_image_removes_the_scratch_a_dead_process_left(filter_stacks, tmp_path) -> None:
    """A service killed while it made a colour image leaves its planes behind (GBs at 26 MP): the next image
    made there removes them, and keeps the scratch of a process still at work."""
    import os
    import subprocess
    import sys

    from obsy_imaging.colour.combine import SCRATCH_PREFIX

    ended = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True, check=True
    )
    dead = tmp_path / f"{SCRATCH_PREFIX}{int(ended.stdout)}-k1ll3d"
    alive = tmp_path / f"{SCRATCH_PREFIX}{os.getppid()}-busy"  # the process that started this test
    for folder in (dead, alive):
        folder.mkdir()
        (folder / "aligned-0.f32").write_bytes(b"\0" * 64)
    stacks, _truth = filter_stacks
    made = compose(stacks, "rgb", gradient_order=None, white="none", scratch=tmp_path)
    assert not dead.exists()
    assert (alive / "aligned-0.f32").exists()
    made.close()
    assert sorted(p.name for p in tmp_path.iterdir()) == [alive.name]
