"""Filter names compared as people write them: "L", "Lum" and "Luminance" are one filter.

The scheduler maps a plan's filter onto the wheel's name with these (:mod:`obsy_scheduler.filters`),
so a plan for "L" is taken through the wheel's "Luminance" and its frames say ``FILTER = 'Luminance'``;
the web service counts those frames into that plan with the same rule.
"""

from __future__ import annotations

import re

#: Names that mean the same filter, after :func:`filter_key`.
SYNONYMS: tuple[frozenset[str], ...] = (
    frozenset({"l", "lum", "luminance"}),
    frozenset({"r", "red"}),
    frozenset({"g", "green"}),
    frozenset({"b", "blue"}),
    frozenset({"ha", "halpha", "hydrogenalpha"}),
    frozenset({"hb", "hbeta", "hydrogenbeta"}),
    frozenset({"sii", "s2", "sulfur2", "sulphur2"}),
    frozenset({"oiii", "o3", "oxygen3"}),
)


def filter_key(name: str | None) -> str:
    """The name without case, blanks or punctuation ("H-Alpha" -> "halpha")."""
    return re.sub(r"[^a-z0-9]", "", (name or "").lower())


def filter_synonyms(name: str | None) -> frozenset[str]:
    """The keys of every name meaning the same filter as ``name`` (its own key alone when it has no synonym)."""
    key = filter_key(name)
    return next((group for group in SYNONYMS if key in group), frozenset({key}))


def same_filter(a: str | None, b: str | None) -> bool:
    """Whether two names are one filter: the same key, or synonyms ("L" and "Luminance"); no name is no filter."""
    return filter_key(a) == filter_key(b) or filter_key(b) in filter_synonyms(a)
