"""Differential photometry of a variable star against comparison stars of known magnitude, with a
check star to show the result holds.

Each usable comparison gives a zero point ``m_cat - m_inst``; one comparison, or the weighted mean
of several (an ensemble, weights 1/σ²), puts the target on the sequence's scale. There is no free
slope: a slope fitted across a handful of comparisons bends the target's magnitude by the colours
and errors of those few stars. Comparisons that are off the frame, saturated, non-linear or
without a sky are dropped, each with a reason; if none is left the frame gives no magnitude, and
says why.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

import numpy as np
from astropy.wcs import WCS

from obsy_imaging.photometry.aperture import ApertureMeasurement, Apertures, CcdNoise, StarFlag, measure
from obsy_imaging.photometry.transform import Transform

REJECTING = StarFlag.OFF_FRAME | StarFlag.SATURATED | StarFlag.NON_LINEAR | StarFlag.NO_SKY


@dataclass(frozen=True)
class Star:
    """A star of a sequence. ``mag`` (and ``mag_err``) are the catalogue's, in the report's band;
    ``label`` is what the report calls it (an AUID or the chart's label); ``bands`` its catalogue
    magnitudes in every band the chart gives (VSP's names), for the colour a transformation needs."""

    label: str
    ra_deg: float | None
    dec_deg: float | None
    mag: float | None = None
    mag_err: float = 0.0
    bands: Mapping[str, float] | None = field(default=None, compare=False)
    #: Colour indices given as such ({"B-V": 0.55}): the observer's own stars have no other bands.
    colours: Mapping[str, float] | None = field(default=None, compare=False)


@dataclass(frozen=True)
class Sequence:
    """A variable star, its comparison stars and its check star; ``chart_id`` is AAVSO's sequence
    ID (VSP), or None for the observer's own comparison stars."""

    target: Star
    comparisons: tuple[Star, ...]
    check: Star | None = None
    chart_id: str | None = None


@dataclass(frozen=True)
class StarResult:
    star: Star
    instrumental_mag: float
    instrumental_err: float
    flags: StarFlag
    snr: float


@dataclass
class FrameMagnitudes:
    """One frame's answer. ``mag`` is None when there is none; ``reasons`` says why, and also names
    every comparison that was dropped."""

    mag: float | None = None
    mag_err: float | None = None
    comparisons_used: list[StarResult] = field(default_factory=list)
    target: StarResult | None = None
    check: StarResult | None = None
    check_mag: float | None = None
    check_err: float | None = None
    #: The magnitudes are on the standard system through a colour term (the report's TRANS=YES).
    transformed: bool = False
    reasons: list[str] = field(default_factory=list)

    @property
    def ensemble(self) -> bool:
        return len(self.comparisons_used) > 1

    @property
    def check_residual(self) -> float | None:
        """Measured minus catalogue magnitude of the check star: flat within its error on a good night."""
        if self.check_mag is None or self.check is None or self.check.star.mag is None:
            return None
        return self.check_mag - self.check.star.mag


def _describe(flags: StarFlag) -> str:
    words = {
        StarFlag.OFF_FRAME: "off the frame",
        StarFlag.SATURATED: "saturated",
        StarFlag.NON_LINEAR: "beyond the sensor's linear range",
        StarFlag.NO_SKY: "no clean sky around it",
    }
    return ", ".join(text for flag, text in words.items() if flags & flag)


def measure_sequence(
    image: np.ndarray,
    wcs: WCS,
    sequence: Sequence,
    apertures: Apertures,
    noise: CcdNoise,
    *,
    saturation_adu: float,
    linearity_adu: float | None = None,
    transform: Transform | None = None,
) -> FrameMagnitudes:
    """The target's (and the check star's) magnitude in one frame with a WCS; with ``transform``, on
    the standard system (:mod:`~obsy_imaging.photometry.transform`) when every comparison used has
    the colour on its chart, else untransformed with the reason."""
    result = FrameMagnitudes()
    stars = [sequence.target, *sequence.comparisons] + ([sequence.check] if sequence.check else [])
    placed = [s for s in stars if s.ra_deg is not None and s.dec_deg is not None]
    for s in stars:
        if s not in placed:
            result.reasons.append(f"{s.label}: no coordinates")
    if sequence.target not in placed:
        return result
    x, y = wcs.all_world2pix(np.array([s.ra_deg for s in placed]), np.array([s.dec_deg for s in placed]), 0)
    m = measure(image, x, y, apertures, noise, saturation_adu=saturation_adu, linearity_adu=linearity_adu)
    by_star = {id(s): _star_result(s, m, i) for i, s in enumerate(placed)}

    target = by_star[id(sequence.target)]
    result.target = target
    if target.flags & REJECTING or not math.isfinite(target.instrumental_mag):
        why = _describe(target.flags & REJECTING) or "no light above the sky"
        result.reasons.insert(0, f"target {sequence.target.label}: {why}")
        return result

    zero_points, weights = _zero_points(sequence.comparisons, by_star, result)
    if not zero_points:
        result.reasons.insert(0, "no usable comparison star")
        return result
    colour_term = _colour_term(transform, result)
    if colour_term is not None:
        zero_points = [z - colour_term(c.star) for z, c in zip(zero_points, result.comparisons_used, strict=True)]
        result.transformed = True
    w = np.array(weights)
    zero_point = float(np.sum(w * np.array(zero_points)) / w.sum())
    zero_point_err = float(1.0 / math.sqrt(w.sum()))
    result.mag = target.instrumental_mag + zero_point
    if colour_term is not None:
        result.mag += transform.term.coefficient * transform.target_colour
    result.mag_err = math.hypot(target.instrumental_err, zero_point_err)

    if sequence.check is not None and id(sequence.check) in by_star:
        check = by_star[id(sequence.check)]
        result.check = check
        if check.flags & REJECTING or not math.isfinite(check.instrumental_mag):
            result.reasons.append(f"check {sequence.check.label}: {_describe(check.flags & REJECTING) or 'no light'}")
        else:
            result.check_mag = check.instrumental_mag + zero_point
            result.check_err = math.hypot(check.instrumental_err, zero_point_err)
            if colour_term is not None:
                correction = colour_term(sequence.check)
                if correction is None:
                    result.reasons.append(
                        f"check {sequence.check.label}: no {transform.term.colour} (chart or colours), not transformed"
                    )
                result.check_mag += correction or 0.0
    return result


def _colour_term(transform: Transform | None, result: FrameMagnitudes) -> Callable[[Star], float | None] | None:
    """``star -> T·colour`` (None for a star without the colour) when every comparison used has the
    colour, else None (and the reason)."""
    if transform is None:
        return None
    term = transform.term
    used = [c.star for c in result.comparisons_used]
    missing = [star.label for star in used if term.colour_of(star.bands, star.colours) is None]
    if missing:
        result.reasons.append(
            f"not transformed: comparison {', '.join(missing)} has no {term.colour} (chart or colours)"
        )
        return None

    def correction(star: Star) -> float | None:
        colour = term.colour_of(star.bands, star.colours)
        return None if colour is None else term.coefficient * colour

    return correction


def _zero_points(
    comparisons: tuple[Star, ...], by_star: dict[int, StarResult], result: FrameMagnitudes
) -> tuple[list[float], list[float]]:
    """Each usable comparison's zero point and weight; the others go into ``result.reasons``."""
    zero_points, weights = [], []
    for comparison in comparisons:
        r = by_star.get(id(comparison))
        if r is None:
            continue
        if comparison.mag is None:
            result.reasons.append(f"comparison {comparison.label}: no catalogue magnitude")
        elif r.flags & REJECTING or not math.isfinite(r.instrumental_mag):
            result.reasons.append(f"comparison {comparison.label}: {_describe(r.flags & REJECTING) or 'no light'}")
        else:
            result.comparisons_used.append(r)
            zero_points.append(comparison.mag - r.instrumental_mag)
            weights.append(1.0 / (r.instrumental_err**2 + comparison.mag_err**2))
    return zero_points, weights


def _star_result(star: Star, m: ApertureMeasurement, i: int) -> StarResult:
    mag, err = m.instrumental_magnitude()
    return StarResult(star, float(mag[i]), float(err[i]), StarFlag(int(m.flags[i])), float(m.snr[i]))
