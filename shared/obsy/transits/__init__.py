"""Exoplanet transit ephemerides and the transit windows of a night, shared by the scheduler (planning)
and the imaging service (reduction): ``ephemeris`` reads a NASA Exoplanet Archive CSV export,
``predict`` gives each transit's contacts and observing window in BJD_TDB and UTC at the site."""
