"""The barycentric light-travel-time correction: the transit predictions of the core library use it
too, so it lives there (:mod:`obsy.barycentre`); this module keeps the imaging service's import path."""

from obsy.barycentre import AU_M, C_M_S, light_travel_time_s

__all__ = ["AU_M", "C_M_S", "light_travel_time_s"]
