"""The transit windows of a night: shared with the scheduler, so they live in the core library
(:mod:`obsy.transits.predict`); this module keeps the imaging service's import path."""

from obsy.transits.predict import GEOCENTRE, TransitWindow, bjd_tdb, transits_between, utc_of_bjd

__all__ = ["GEOCENTRE", "TransitWindow", "bjd_tdb", "transits_between", "utc_of_bjd"]
