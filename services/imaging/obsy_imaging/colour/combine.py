"""Channels from filters: RGB and LRGB, and the narrowband palettes HOO and SHO.

A palette maps the red, green and blue channels to filters' stacks:

| palette | red | green | blue |
|---|---|---|---|
| ``rgb`` | R | G | B |
| ``lrgb`` | R | G | B, then the luminance replaced by L's |
| ``hoo`` | Hα | OIII | OIII |
| ``sho`` | SII | Hα | OIII (the "Hubble palette") |

Filter names are matched without case, spaces, dashes and underscores, with the usual
spellings (``Red``/``R``, ``Ha``/``H-alpha``/``Halpha``, ``OIII``/``O3``, ``L``/``Lum``/``Luminance``…).

**LRGB** (:func:`combine_lrgb`) on linear data: the colour image's luminance ``Y`` (the mean of
its three channels, above the sky) is replaced by L's, scaled to Y by a least-squares line over
the pixels: each channel is multiplied by ``L' / Y`` (where Y is above the sky's noise; the
channels are left as they are elsewhere). The colour ratios of every pixel stay; L's better
signal-to-noise takes the place of the RGB's.

:func:`compose` is the whole chain: aligned, gradients removed per filter, combined, the sky
neutralised and the white balanced; linear, float32 height x width x 3, for a stretch. It works a
band of rows at a time (:mod:`obsy_imaging.colour.bands`): each filter's stack is resampled onto the
reference's grid band by band into a scratch plane, a binned copy filled on the way; the gradient is
fitted on the binned copy and taken off band by band; the sky levels, the white balance and the
LRGB luminance fit come from the binned copies (the same functions, on the small images), and the
three colour planes are written band by band. :func:`write_colour_image` streams them to a FITS cube
and a stretched JPEG, so a 26 MP LRGB image is made in well under 1 GB.
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from astropy.io import fits

from obsy.files import atomic_replacement
from obsy_imaging.colour.align import transforms_onto
from obsy_imaging.colour.background import fit_background
from obsy_imaging.colour.bands import Plane, Source, as_reader, band_rows, bands, bin_rows, binning_for
from obsy_imaging.colour.neutralise import WhiteBalance, background_levels, background_noise, neutralise_background
from obsy_imaging.colour.neutralise import white_balance as balance
from obsy_imaging.registration import warp_rows

PALETTES: dict[str, tuple[str, str, str]] = {
    "rgb": ("R", "G", "B"),
    "lrgb": ("R", "G", "B"),
    "hoo": ("Ha", "OIII", "OIII"),
    "sho": ("SII", "Ha", "OIII"),
}
_ALIASES = {
    "R": {"r", "red"},
    "G": {"g", "green"},
    "B": {"b", "blue"},
    "L": {"l", "lum", "luminance", "clear", "c"},
    "Ha": {"ha", "halpha", "h", "hα", "hydrogenalpha"},
    "OIII": {"oiii", "o3", "o"},
    "SII": {"sii", "s2", "s"},
}


class ColourError(ValueError):
    """A colour image that cannot be made from the stacks given, and why."""


def _canonical(name: str) -> str:
    return re.sub(r"[\s_\-]", "", name).lower()


def channels_for(palette: str, filters: list[str]) -> dict[str, str]:
    """Which of ``filters`` (the stacks' filter names) serves each role the palette needs
    (``R``, ``G``, ``B``, ``Ha``… and ``L`` for LRGB); a :class:`ColourError` names what is missing."""
    if palette not in PALETTES:
        raise ColourError(f"unknown palette {palette!r} (one of {', '.join(PALETTES)})")
    roles = list(dict.fromkeys(PALETTES[palette] + (("L",) if palette == "lrgb" else ())))
    found, missing = {}, []
    for role in roles:
        match = next((f for f in filters if _canonical(f) in _ALIASES[role]), None)
        if match is None:
            missing.append(role)
        else:
            found[role] = match
    if missing:
        raise ColourError(
            f"palette {palette} needs a stack of {', '.join(missing)}; there are stacks of "
            f"{', '.join(filters) or 'no filter'}"
        )
    return found


@dataclass(frozen=True)
class LrgbFit:
    """How L replaces an RGB image's luminance (see the module): the RGB's sky and noise, L's sky, and
    the line from L above its sky to the RGB's mean above its sky."""

    sky: float
    l_sky: float
    slope: float
    intercept: float
    noise: float


def fit_lrgb(luminance: np.ndarray, rgb: np.ndarray, *, noise_scale: float = 1.0) -> LrgbFit:
    """The LRGB fit of ``luminance`` (aligned, linear) to ``rgb`` (h x w x 3, linear, sky neutral);
    ``noise_scale``: the factor from these images' sky noise to the full images' (binned copies:
    their binning)."""
    levels = background_levels([rgb[..., i] for i in range(3)])
    sky = float(np.mean(levels))
    y = rgb.mean(axis=2) - sky
    l_sky = background_levels([luminance])[0]
    lum = luminance - l_sky
    finite = np.isfinite(y) & np.isfinite(lum)
    step = max(1, finite.sum() // 200_000)
    slope, intercept = np.polyfit(lum[finite][::step], y[finite][::step], 1)
    noise = float(np.mean(background_noise([rgb[..., i] for i in range(3)]))) * noise_scale
    return LrgbFit(sky, float(l_sky), float(slope), float(intercept), noise)


def apply_lrgb(luminance: np.ndarray, rgb: np.ndarray, fit: LrgbFit) -> np.ndarray:
    """``rgb`` (a band, h x w x 3) with its luminance replaced by ``luminance``'s (the same band)."""
    y = rgb.mean(axis=2) - fit.sky
    scaled = fit.slope * (luminance - fit.l_sky) + fit.intercept
    signal = y > 3.0 * fit.noise
    factor = np.where(signal, scaled / np.where(signal, y, 1.0), 1.0).astype(np.float32)
    out = np.empty_like(rgb, dtype=np.float32)
    for i in range(3):
        out[..., i] = fit.sky + (rgb[..., i] - fit.sky) * factor
    return out


def combine_lrgb(luminance: np.ndarray, rgb: np.ndarray) -> np.ndarray:
    """RGB (h x w x 3, linear, sky neutral) with its luminance replaced by ``luminance`` (aligned, linear)."""
    return apply_lrgb(luminance, rgb, fit_lrgb(luminance, rgb))


#: A colour image's scratch folder is named ``obsy-colour-<pid>-<random>``: the process that made it.
SCRATCH_PREFIX = "obsy-colour-"


def _process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, another user's
        return True
    return True


def remove_stale_scratch(scratch: Path | None) -> list[Path]:
    """Remove the scratch folders (under ``scratch``, else the system's temporary folder) left by a colour
    image whose process died mid-way (a killed service, a power cut): each can hold several GB of
    planes. A folder of a process still running (another command making its own image) is kept.
    Returns the folders removed."""
    parent = Path(scratch) if scratch is not None else Path(tempfile.gettempdir())
    removed = []
    for folder in parent.glob(f"{SCRATCH_PREFIX}*"):
        owner = folder.name[len(SCRATCH_PREFIX) :].split("-", 1)[0]
        if not folder.is_dir() or not owner.isdigit() or int(owner) == os.getpid() or _process_alive(int(owner)):
            continue
        shutil.rmtree(folder, ignore_errors=True)
        removed.append(folder)
    return removed


def _scratch_folder(scratch: Path | None) -> tempfile.TemporaryDirectory:
    remove_stale_scratch(scratch)
    return tempfile.TemporaryDirectory(prefix=f"{SCRATCH_PREFIX}{os.getpid()}-", dir=scratch)


@dataclass
class Composition:
    """The linear colour image, as three planes on disk (red, green, blue; :meth:`rows` a band at a
    time, :attr:`image` all of it in memory) and what made it. Its scratch folder goes with it
    (:meth:`close`, or when it is collected)."""

    planes: tuple[Plane, Plane, Plane]
    filters: dict[str, str]  # role -> filter
    sky_levels: np.ndarray  # per channel, before neutralisation
    white_balance: np.ndarray  # k per channel
    binned: np.ndarray  # the image binned (h/b x w/b x 3), for statistics
    sample: np.ndarray  # the image on a grid of every n-th row and column (h/n x w/n x 3), for a stretch
    bounds: tuple[float, float] | None  # its lowest and highest finite value; None: none finite
    band: int  # rows per band
    _scratch: tempfile.TemporaryDirectory = field(repr=False)

    @property
    def shape(self) -> tuple[int, int]:
        return self.planes[0].shape

    def rows(self) -> Iterator[tuple[int, int, np.ndarray]]:
        """(first row, end row, that band h x w x 3) from top to bottom."""
        for r0, r1 in bands(self.shape[0], self.band):
            yield r0, r1, np.stack([plane.read(r0, r1) for plane in self.planes], axis=2)

    @property
    def image(self) -> np.ndarray:
        """The whole image in memory, float32 h x w x 3."""
        return np.stack([plane.whole() for plane in self.planes], axis=2)

    def close(self) -> None:
        self._scratch.cleanup()


def _affine(channels: list[np.ndarray], white: WhiteBalance, aperture_px: float):
    """Per channel (k, offset) so that ``k x + offset`` is the channel neutralised and balanced, from
    the binned channels (the module's neutralise and white balance, run on them); the levels before
    and the balance."""
    neutral, levels = neutralise_background(channels)
    common = float(np.mean(levels))
    balanced, factors = balance(neutral, white, aperture_px=aperture_px)
    middle = background_levels(neutral) if white != "none" else np.full(3, common)
    maps = []
    for level, level_b, k in zip(levels, middle, factors, strict=True):
        maps.append((float(k), float(level_b) * (1.0 - float(k)) - float(k) * (float(level) - common)))
    return maps, levels, factors, balanced


def compose(
    stacks: dict[str, Source],
    palette: str,
    *,
    gradient_order: int | None = 2,
    white: WhiteBalance = "stars",
    reference: str | None = None,
    scratch: Path | None = None,
    band_bytes: int | None = None,
) -> Composition:
    """The linear colour image of a palette from mono stacks keyed by filter name (arrays, or
    readers with their shapes: ``stacking.fits_reader``), on the grid of the stack ``reference``
    (a filter name; by default the green channel's); its planes in a folder under ``scratch``
    (the system's temporary folder by default). See the module."""
    roles = channels_for(palette, list(stacks))
    needed = list(dict.fromkeys(roles.values()))
    reference = reference or roles[PALETTES[palette][1]]
    sources = {f: as_reader(stacks[f]) for f in needed}
    transforms = transforms_onto({f: stacks[f] for f in needed}, reference)
    shape = sources[reference][1]
    height, width = shape
    binning = binning_for(shape)
    rows = band_rows(shape, binning, *(() if band_bytes is None else (band_bytes,)))
    folder = _scratch_folder(scratch)
    try:
        aligned: dict[str, Plane] = {}
        binned: dict[str, np.ndarray] = {}
        for f in needed:
            read, _ = sources[f]
            plane = aligned[f] = Plane(Path(folder.name) / f"aligned-{len(aligned)}.f32", shape)
            small = []
            for r0, r1 in bands(height, rows):
                block = warp_rows(read, shape, transforms[f], (r0, r1))
                plane.write(r0, block)
                small.append(bin_rows(block, binning, width))
            binned[f] = np.concatenate(small)
            if gradient_order is not None:
                model = fit_background(binned[f], order=gradient_order, binning=binning, shape=shape)
                level = np.float32(model.mean)
                small = []
                for r0, r1 in bands(height, rows):
                    block = plane.read(r0, r1) - model.evaluate(slice(r0, r1)) + level
                    plane.write(r0, block)
                    small.append(bin_rows(block, binning, width))
                binned[f] = np.concatenate(small)
        channels = [binned[roles[role]] for role in PALETTES[palette]]
        maps, levels, factors, balanced = _affine(channels, white, 6.0 / binning)
        lrgb = None
        if palette == "lrgb":
            lrgb = fit_lrgb(binned[roles["L"]], np.stack(balanced, axis=2), noise_scale=float(binning))
        out = tuple(Plane(Path(folder.name) / f"colour-{i}.f32", shape) for i in range(3))
        step = max(1, int(np.sqrt(height * width / 500_000)))  # the stretch's grid sample (obsy.stretch)
        small, sample, low, high = [], [], np.inf, -np.inf
        for r0, r1 in bands(height, rows):
            block = np.stack(
                [
                    np.float32(k) * aligned[roles[role]].read(r0, r1) + np.float32(offset)
                    for role, (k, offset) in zip(PALETTES[palette], maps, strict=True)
                ],
                axis=2,
            )
            if lrgb is not None:
                block = apply_lrgb(aligned[roles["L"]].read(r0, r1), block, lrgb)
            for i, plane in enumerate(out):
                plane.write(r0, block[..., i])
            small.append(np.stack([bin_rows(block[..., i], binning, width) for i in range(3)], axis=2))
            sample.append(block[(-r0) % step :: step, ::step])
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)  # a band without data
                low, high = np.fmin(low, float(np.nanmin(block))), np.fmax(high, float(np.nanmax(block)))
        for plane in aligned.values():
            plane.path.unlink()
    except BaseException:
        folder.cleanup()
        raise
    return Composition(
        out,
        roles,
        levels,
        factors,
        np.concatenate(small),
        np.concatenate(sample),
        (low, high) if np.isfinite(low) else None,
        rows,
        folder,
    )


def write_colour_image(
    stacks: dict[str, Source],
    palette: str,
    path: Path,
    header: fits.Header,
    *,
    gradient_order: int | None = 2,
    white: WhiteBalance = "stars",
    stretch: str = "stf",
    scratch: Path | None = None,
    thumbnail_width: int | None = None,
    quality: int | None = None,
) -> Composition:
    """:func:`compose`, then the image written to ``path`` (float32 FITS, three planes red, green, blue,
    with ``header``'s cards and the white balance, ``WBAL_R/G/B``) and its stretched sample and
    thumbnail beside it, a band at a time."""
    from obsy.stretch import apply_stretch, colour_stretch_parameters
    from obsy_imaging.stretch import arcsinh_stretch, black_point
    from obsy_imaging.stretch.samples import write_samples

    made = compose(stacks, palette, gradient_order=gradient_order, white=white, scratch=scratch)
    try:
        height, width = made.shape
        cards = fits.Header()
        cards["SIMPLE"], cards["BITPIX"], cards["NAXIS"] = True, -32, 3
        cards["NAXIS1"], cards["NAXIS2"], cards["NAXIS3"] = width, height, 3
        cards.extend(header, unique=True)
        for plane, k in zip("RGB", made.white_balance, strict=True):
            cards[f"WBAL_{plane}"] = (float(k), f"white balance ({white}) of the {plane} plane")

        def write(temporary: Path) -> None:
            stream = fits.StreamingHDU(temporary, cards)
            for plane in made.planes:
                for r0, r1 in bands(height, made.band):
                    stream.write(plane.read(r0, r1))
            stream.close()

        path.parent.mkdir(parents=True, exist_ok=True)
        with atomic_replacement(path) as temporary:
            write(temporary)
        stretched = np.zeros((height, width, 3), dtype=np.uint8)
        if made.bounds is not None:
            if stretch == "stf":
                parameters = colour_stretch_parameters(made.sample, bounds=made.bounds)
                draw = (lambda band: apply_stretch(band, parameters)) if parameters else None
            else:
                black = black_point(made.sample)
                draw = lambda band: arcsinh_stretch(band, black=black, high=made.bounds[1])  # noqa: E731
            for r0, r1, band in made.rows():
                if draw is not None:
                    stretched[r0:r1] = np.rint(draw(band) * 255.0)
        options = {"thumbnail_width": thumbnail_width, "quality": quality}
        write_samples(path, stretched, stretched=True, **{k: v for k, v in options.items() if v is not None})
    except BaseException:
        made.close()
        raise
    return made
