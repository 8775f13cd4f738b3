"""Header normalisation: every capture program's FITS keywords into one typed :class:`FrameHeader`.

- :mod:`.model`: :class:`FrameHeader` and :class:`FrameType`;
- :mod:`.values`: parsing of angles (sexagesimal or degrees) and times, sign-safe;
- :mod:`.normalise`: the keyword spellings of INDI/Ekos, N.I.N.A., SGP and MaxIm DL and
  the derived times (mid-exposure JD, BJD_TDB) and airmass.
"""

from obsy_imaging.headers.model import FrameHeader, FrameType, HeaderError
from obsy_imaging.headers.normalise import normalise_header

__all__ = ["FrameHeader", "FrameType", "HeaderError", "normalise_header"]
