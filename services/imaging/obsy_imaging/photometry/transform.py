"""Transformation to the standard system with a colour term, as AAVSO's CCD Photometry Guide and its
TransformApplier do it for one filter.

A camera and filter see a star's colour a little differently from the standard (Johnson–Cousins)
system: the instrumental magnitude is ``v = V - T·(B−V) + const`` for a coefficient ``Tv_bv`` found
from a standard field (M67). Differentially, against a comparison ``c``::

    V_target = v_target + (V_c - v_c) + Tv_bv · ((B−V)_target - (B−V)_c)

so each comparison's zero point is ``V_c - v_c - T·(B−V)_c`` and the target adds ``T·(B−V)_target``.
The comparisons' colours come from the chart (their catalogue magnitudes in both bands); the target's
is the observer's (its colour from other nights or the literature: one filter cannot measure it).
Coefficient names are AAVSO's: ``T<band>_<colour>`` (``Tv_bv``, ``Tb_bv``, ``Tr_vr``, ``Ti_vi``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from obsy_imaging.config import TRANSFORMATION_NAME

#: The coefficient names' letters as VSP names the bands.
BANDS = {"u": "U", "b": "B", "v": "V", "r": "Rc", "i": "Ic"}
#: The report's filter codes that a transformation puts on the standard system. Unfiltered (CV, CR)
#: and tri-colour (TG...) frames are reported on a band's zero point only: a V filter's coefficient
#: does not hold for them.
STANDARD_FILTERS = {"U": "U", "B": "B", "V": "V", "R": "Rc", "I": "Ic"}


@dataclass(frozen=True)
class ColourTerm:
    """One band's transformation: ``coefficient`` times the colour ``first − second`` (VSP band names)."""

    name: str  # AAVSO's name, e.g. Tv_bv
    band: str
    first: str
    second: str
    coefficient: float

    @property
    def colour(self) -> str:
        """The colour index as the configuration writes it (B-V, V-R...)."""
        return f"{self.first[0]}-{self.second[0]}"

    def colour_of(
        self, magnitudes: Mapping[str, float] | None, colours: Mapping[str, float] | None = None
    ) -> float | None:
        """A star's colour: given as such (the observer's own stars), else from its catalogue
        magnitudes per band (a chart's), or None."""
        if colours and self.colour in colours:
            return colours[self.colour]
        if not magnitudes or self.first not in magnitudes or self.second not in magnitudes:
            return None
        return magnitudes[self.first] - magnitudes[self.second]


@dataclass(frozen=True)
class Transform:
    """What a frame's photometry needs to transform: the band's colour term and the target's colour."""

    term: ColourTerm
    target_colour: float


def colour_terms(coefficients: Mapping[str, float]) -> dict[str, ColourTerm]:
    """The configured coefficients by the VSP band they transform; raises ValueError for a bad name
    or two coefficients for one band."""
    terms: dict[str, ColourTerm] = {}
    for name, coefficient in coefficients.items():
        match = TRANSFORMATION_NAME.fullmatch(name.strip())
        if match is None:
            raise ValueError(f"{name!r} is not a transformation coefficient as AAVSO names them (Tv_bv, Tr_vr...)")
        band, first, second = (BANDS[letter.lower()] for letter in match.groups())
        if band in terms:
            raise ValueError(f"two transformation coefficients for {band}: {terms[band].name} and {name}")
        terms[band] = ColourTerm(name.strip(), band, first, second, float(coefficient))
    return terms


def transform_for_filter(
    filter_code: str, terms: Mapping[str, ColourTerm], target_colours: Mapping[str, float]
) -> tuple[Transform | None, str | None]:
    """:func:`transform_for` of a report's filter code; (None, None) for a code no coefficient
    transforms (unfiltered, tri-colour, narrow band)."""
    band = STANDARD_FILTERS.get(filter_code.upper())
    return (None, None) if band is None else transform_for(band, terms, target_colours)


def transform_for(
    band: str, terms: Mapping[str, ColourTerm], target_colours: Mapping[str, float]
) -> tuple[Transform | None, str | None]:
    """The transform of a VSP band for a target with these colours, or (None, why not); (None, None)
    when no coefficient is configured for the band."""
    term = terms.get(band)
    if term is None:
        return None, None
    colour = target_colours.get(term.colour)
    if colour is None:
        return None, f"not transformed: {term.name} needs the target's {term.colour} (its colours)"
    return Transform(term, float(colour)), None
