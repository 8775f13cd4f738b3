"""Differential aperture photometry of variable stars and AAVSO Extended File Format reports."""
