"""The bright-star catalogue clouddetect judges against: obsy-core's (see obsy.skymodel.BRIGHT_STARS)."""

from __future__ import annotations

from obsy.skymodel import BRIGHT_STARS, load_bright_stars

load_catalogue = load_bright_stars

__all__ = ["BRIGHT_STARS", "load_catalogue"]
