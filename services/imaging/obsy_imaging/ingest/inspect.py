"""Is a file a complete, usable frame? Each way it is not has a name and a reason for people.

Problems marked ``may_complete`` can be a file still being written (a partial header, data
shorter than the header promises): the watcher waits for those and quarantines them only when
they stay that way. Every other problem is final.
"""

from __future__ import annotations

import hashlib
import math
import warnings
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any

import numpy as np
from astropy.io import fits

from obsy_imaging.headers import FrameHeader, HeaderError, normalise_header
from obsy_imaging.headers.normalise import Site

BLOCK = 2880
CARD = 80
#: Raw frames from cameras: 8/16/32-bit integers (16-bit unsigned via BZERO) or 32-bit floats.
DEFAULT_ACCEPTED_BITPIX = (8, 16, 32, -32)
XISF_SIGNATURE = b"XISF0100"


class Problem(StrEnum):
    INCOMPLETE = "incomplete"  # still being written: empty, partial header
    TRUNCATED = "truncated"  # header complete, data shorter than it promises
    CORRUPT = "corrupt"
    NOT_FITS = "not_fits"
    XISF = "xisf"
    NO_IMAGE = "no_image"
    UNEXPECTED_BITPIX = "unexpected_bitpix"
    NON_FINITE = "non_finite"
    MISSING_KEYS = "missing_keys"
    BAD_HEADER = "bad_header"  # a key is there but its value cannot be understood
    UNREADABLE = "unreadable"  # the operating system refused (permissions, I/O error)

    @property
    def may_complete(self) -> bool:
        return self in (Problem.INCOMPLETE, Problem.TRUNCATED)


class FrameRejectedError(Exception):
    def __init__(self, problem: Problem, reason: str) -> None:
        self.problem = problem
        self.reason = reason
        super().__init__(f"{problem.value}: {reason}")


@dataclass(frozen=True)
class InspectedFrame:
    path: Path
    size: int
    mtime_ns: int
    sha256: str
    header: FrameHeader
    #: Every card of the image's header: (keyword, value, comment), values JSON-safe.
    cards: list[tuple[str, Any, str]]
    bitpix: int
    compressed: bool


def _json_safe(value: Any) -> Any:
    if isinstance(value, bool | int | str) or value is None:
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else str(value)
    return str(value)


def _data_bytes(header: fits.Header) -> int:
    """Bytes of an HDU's data as its header declares them (FITS 4.0, section 4.4.1)."""
    naxis = int(header.get("NAXIS", 0))
    if naxis == 0:
        return 0
    count = 1
    for axis in range(1, naxis + 1):
        count *= int(header.get(f"NAXIS{axis}", 0))
    bits = abs(int(header["BITPIX"])) * int(header.get("GCOUNT", 1)) * (int(header.get("PCOUNT", 0)) + count)
    return bits // 8


def _header_length(path: Path, size: int) -> int | None:
    """Bytes of the primary header (the block holding its END card), or None when it has no END yet."""
    with path.open("rb") as stream:
        offset = 0
        while offset < size and offset <= 1000 * BLOCK:  # no real header is this long
            block = stream.read(BLOCK)
            if not block:
                return None
            for start in range(0, len(block) - CARD + 1, CARD):
                if block[start : start + 8] == b"END     ":
                    return offset + BLOCK
            offset += len(block)
    return None


def _sha256(path: Path) -> str:
    with path.open("rb") as stream:
        return hashlib.file_digest(stream, "sha256").hexdigest()


def inspect_frame(
    path: Path, *, site: Site | None = None, accepted_bitpix: tuple[int, ...] = DEFAULT_ACCEPTED_BITPIX
) -> InspectedFrame:
    """The frame with its typed header and hash, or :class:`FrameRejectedError` with the reason."""
    try:
        stat = path.stat()
        with path.open("rb") as stream:
            head = stream.read(BLOCK)
    except OSError as exc:
        raise FrameRejectedError(Problem.UNREADABLE, f"cannot read {path.name}: {exc.strerror or exc}") from exc
    size = stat.st_size
    if head.startswith(XISF_SIGNATURE) or path.suffix.lower() == ".xisf":
        raise FrameRejectedError(
            Problem.XISF,
            "XISF (N.I.N.A./PixInsight) is not read yet: save FITS in the capture program, "
            "or convert the file to FITS and import it",
        )
    if size == 0:
        raise FrameRejectedError(Problem.INCOMPLETE, "the file is empty (still being written?)")
    if not head.startswith(b"SIMPLE  ="):
        if b"SIMPLE  =".startswith(head[:9]):
            raise FrameRejectedError(Problem.INCOMPLETE, f"only {size} bytes: the FITS header is not complete yet")
        raise FrameRejectedError(Problem.NOT_FITS, f"not a FITS file (it starts with {head[:16]!r})")
    header_length = _header_length(path, size)
    if header_length is None:
        raise FrameRejectedError(
            Problem.INCOMPLETE, f"the FITS header has no END card in {size} bytes (still written?)"
        )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # astropy warns about truncation and odd cards; we judge ourselves
        try:
            with fits.open(path, memmap=False, lazy_load_hdus=True) as hdus:
                return _inspect_open(path, stat, hdus, header_length, site, accepted_bitpix)
        except FrameRejectedError:
            raise
        except (OSError, ValueError, TypeError, KeyError, IndexError) as exc:
            raise FrameRejectedError(Problem.CORRUPT, f"the FITS structure cannot be read: {exc}") from exc


def _inspect_open(  # noqa: PLR0917 - one caller
    path: Path,
    stat: Any,
    hdus: fits.HDUList,
    header_length: int,
    site: Site | None,
    accepted_bitpix: tuple[int, ...],
) -> InspectedFrame:
    image_hdu = _image_hdu(hdus, header_length, stat.st_size)
    bitpix, compressed = _check_pixels(image_hdu, accepted_bitpix)
    typed, cards = _typed_header(image_hdu.header, site)
    return InspectedFrame(
        path=path,
        size=stat.st_size,
        mtime_ns=stat.st_mtime_ns,
        sha256=_sha256(path),
        header=typed,
        cards=cards,
        bitpix=bitpix,
        compressed=compressed,
    )


def _image_hdu(hdus: fits.HDUList, header_length: int, size: int) -> Any:
    """The first 2-D image (primary, or a tile-compressed one); every HDU up to it must be complete."""
    index = 0
    while True:
        try:
            hdu = hdus[index]
        except IndexError:
            raise FrameRejectedError(Problem.NO_IMAGE, "no 2-D image in the file") from None
        compressed = isinstance(hdu, fits.CompImageHDU)
        if index == 0:
            end = header_length + _data_bytes(hdu.header)
        else:  # a compressed HDU's header is the image's, not its table's: astropy's span (padded) serves
            info = hdus.fileinfo(index)
            end = info["datLoc"] + (info["datSpan"] if compressed else _data_bytes(hdu.header))
        if end > size:
            raise FrameRejectedError(
                Problem.TRUNCATED, f"the data stops at byte {size} of {end} the header promises (truncated)"
            )
        if compressed or (index == 0 and hdu.header.get("NAXIS", 0) >= 2):
            return hdu
        index += 1


def _check_pixels(hdu: Any, accepted_bitpix: tuple[int, ...]) -> tuple[int, bool]:
    """(BITPIX, compressed); floats are read for NaN/inf, compressed data is decompressed to prove it whole."""
    bitpix = int(hdu.header["BITPIX"])
    compressed = isinstance(hdu, fits.CompImageHDU)
    if bitpix not in accepted_bitpix:
        raise FrameRejectedError(
            Problem.UNEXPECTED_BITPIX,
            f"BITPIX {bitpix} is not a raw camera frame (accepted: {', '.join(map(str, accepted_bitpix))})",
        )
    if bitpix > 0 and not compressed:
        return bitpix, compressed
    try:
        data = hdu.data
    except (OSError, ValueError, TypeError) as exc:
        raise FrameRejectedError(Problem.CORRUPT, f"the image data cannot be decoded: {exc}") from exc
    if data is None:
        raise FrameRejectedError(Problem.NO_IMAGE, "the image HDU has no data")
    if data.dtype.kind == "f":
        nan, inf = int(np.isnan(data).sum()), int(np.isinf(data).sum())
        if nan or inf:
            raise FrameRejectedError(Problem.NON_FINITE, f"{nan} NaN and {inf} infinite pixels")
    return bitpix, compressed


def _typed_header(header: fits.Header, site: Site | None) -> tuple[FrameHeader, list[tuple[str, Any, str]]]:
    """The typed header and every card; each card is parsed once, the first of a repeated key wins."""
    cards = [(card.keyword, _json_safe(card.value), card.comment) for card in header.cards]
    values: dict[str, Any] = {}
    for keyword, value, _comment in cards:
        if keyword not in ("COMMENT", "HISTORY", ""):
            values.setdefault(keyword, value)
    comments = {"COMMENT": [str(value) for keyword, value, _ in cards if keyword == "COMMENT"]}
    try:
        return normalise_header(values, site=site, comments=comments), cards
    except HeaderError as exc:
        problem = Problem.MISSING_KEYS if exc.missing else Problem.BAD_HEADER
        raise FrameRejectedError(problem, f"header: {exc}") from exc
