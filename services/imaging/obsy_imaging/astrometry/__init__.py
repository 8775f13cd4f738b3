"""Plate solving: a frame's WCS from its header, or offline from astrometry.net."""

from obsy_imaging.astrometry.solve import Solution, SolveHints, header_wcs, hints_from_header, solve_frame

__all__ = ["Solution", "SolveHints", "header_wcs", "hints_from_header", "solve_frame"]
