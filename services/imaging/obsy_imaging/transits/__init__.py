"""Exoplanet transits: ephemerides, the night's transit windows, the light-curve model and fit,
and the Exoplanet Watch (AAVSO ``#TYPE=EXOPLANET``) report. docs/imaging-transits.md says more."""
