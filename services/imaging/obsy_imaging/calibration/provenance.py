"""Where a master or a calibrated frame came from: returned as data (for the repository) and written to its header.

Header keys (8 characters, so every FITS reader sees them):

========  ==========================================================
NCOMBINE  frames combined into a master
COMBMETH  combination method (median, mean, sigma_clip, winsorized_sigma_clip)
CLIPLOW   lower clipping factor (rejecting methods)
CLIPHIGH  upper clipping factor
CLIPSPRD  spread of sigma clipping (std or mad_std)
CLIPITER  most clipping iterations
REJFRAC   share of the input values rejected
NANPIX    pixels without a finite value
FLATLVL   a master flat's raw level: the mean of its frames' medians, offset taken off (ADU)
FLATNORM  what the combined, levelled flat was divided by (its mean) to bring it to 1
CALBIAS   the master bias used (file name; a master flat: the one taken off its frames)
CALDARK   the master dark used
CALDFLAT  the master dark-flat taken off a flat's frames
CALFLAT   the master flat used
DARKSCL   factor the dark was scaled by (exposure ratio; 1 for a matching dark)
CALSTAT   what was applied to a light: B (bias), D (dark), F (flat) as MaxIm writes it, C (bad pixels repaired)
BPMFIX    bad pixels of a light replaced by the median of their good neighbours
CALDATE   when the calibration was done (UTC)
========  ==========================================================

HISTORY lines name the software, the method, every input file and, for a light, why each
master was chosen.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from datetime import UTC, datetime
from importlib import metadata
from typing import Any

from astropy.io import fits

_PARAMETER_KEYS = {
    "method": "COMBMETH",
    "sigma_low": "CLIPLOW",
    "sigma_high": "CLIPHIGH",
    "spread": "CLIPSPRD",
    "max_iterations": "CLIPITER",
}
_MASTER_KEYS = {"bias": "CALBIAS", "dark": "CALDARK", "darkflat": "CALDFLAT", "flat": "CALFLAT"}
_STATISTIC_KEYS = {
    "rejected_fraction": "REJFRAC",
    "nan_pixels": "NANPIX",
    "flat_level": "FLATLVL",
    "flat_norm": "FLATNORM",
    "dark_scale": "DARKSCL",
    "bad_pixels_repaired": "BPMFIX",
}


@functools.cache
def software() -> str:
    try:
        return f"OBSY obsy-imaging {metadata.version('obsy-imaging')}"
    except metadata.PackageNotFoundError:
        return "OBSY obsy-imaging"


@dataclass(frozen=True)
class Provenance:
    """What was made, from what, how: JSON-able with :meth:`as_dict`, written by :meth:`write_to`."""

    product: str  # "master bias", "master flat", "calibrated light", ...
    inputs: tuple[str, ...]  # the raw frames (paths or names)
    parameters: dict[str, Any] = field(default_factory=dict)  # the combination settings
    masters: dict[str, str] = field(default_factory=dict)  # kind → the master used (path or id)
    statistics: dict[str, float | int] = field(default_factory=dict)
    notes: tuple[str, ...] = ()  # human-readable: why a master was chosen, warnings
    created: datetime = field(default_factory=lambda: datetime.now(UTC))
    software: str = field(default_factory=software)

    def as_dict(self) -> dict[str, Any]:
        return {
            "product": self.product,
            "inputs": list(self.inputs),
            "parameters": dict(self.parameters),
            "masters": dict(self.masters),
            "statistics": dict(self.statistics),
            "notes": list(self.notes),
            "created": self.created.isoformat(),
            "software": self.software,
        }

    def write_to(self, header: fits.Header) -> fits.Header:
        """Add the keywords and HISTORY lines to ``header`` (in place) and return it."""
        for card in self.cards():
            if card.keyword == "HISTORY":
                header.append(card)
            else:
                header[card.keyword] = card.value
        return header

    def cards(self) -> list[fits.Card]:
        """The keywords and the HISTORY lines as header cards (long lines cut into several)."""
        values = [(key, self.parameters[name]) for name, key in _PARAMETER_KEYS.items() if name in self.parameters]
        values += [(key, ascii_text(_short(self.masters[k]))) for k, key in _MASTER_KEYS.items() if k in self.masters]
        values += [(key, self.statistics[name]) for name, key in _STATISTIC_KEYS.items() if name in self.statistics]
        values.append(("CALDATE", self.created.strftime("%Y-%m-%dT%H:%M:%S")))
        cards = [fits.Card(key, value) for key, value in values]
        lines = [f"{self.software}: {self.product}"]
        if self.parameters:
            lines.append("parameters: " + ", ".join(f"{k}={v}" for k, v in self.parameters.items()))
        lines += [f"{kind}: {master}" for kind, master in self.masters.items()]
        lines += [f"input {i}/{len(self.inputs)}: {name}" for i, name in enumerate(self.inputs, 1)]
        lines += self.notes
        for line in lines:
            cards += _history(line)
        return cards


@functools.lru_cache(maxsize=1024)
def _history(line: str) -> tuple[fits.Card, ...]:
    """HISTORY cards for one line of text (72 characters a card); cached: a night repeats the same notes."""
    text = ascii_text(line)
    return tuple(fits.Card("HISTORY", text[i : i + 72]) for i in range(0, max(len(text), 1), 72))


def ascii_text(text: str) -> str:
    """FITS headers hold printable ASCII only: the few other characters our texts use, spelled out."""
    for character, spelled in _SPELLED.items():
        text = text.replace(character, spelled)
    return text.encode("ascii", "replace").decode("ascii")


_SPELLED = {"×": "x", "°C": "C", "°": " deg", "−": "-", "…": "...", "≤": "<=", "≥": ">="}


def _short(value: str) -> str:
    """A file name (the last path part), cut to fit one header card."""
    return value.replace("\\", "/").rsplit("/", 1)[-1][:68]
