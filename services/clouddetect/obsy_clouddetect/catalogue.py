"""The bright-star catalogue shipped with the service (see data/bright_stars.csv for its origin)."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from obsy.skymodel import StarCatalogue

BRIGHT_STARS = Path(__file__).resolve().parent / "data" / "bright_stars.csv"


@lru_cache(maxsize=4)
def load_catalogue(path: Path = BRIGHT_STARS) -> StarCatalogue:
    """Hipparcos stars to Hp 6.5, brightest first; cached per path."""
    return StarCatalogue.from_csv(path)
