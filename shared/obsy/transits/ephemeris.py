"""Transit ephemerides, read from a NASA Exoplanet Archive CSV export of the planetary-systems
table (``ps``, or the composite ``pscomppars``).

The archive's columns: ``pl_name``, ``hostname``, ``pl_tranmid`` (BJD, the time system in
``pl_tsystemref``), ``pl_orbper`` (days), ``pl_trandur`` (hours), ``pl_trandep`` (per cent),
``pl_ratror`` (Rp/R*), ``pl_ratdor`` (a/R*), ``pl_orbincl`` (degrees), ``pl_orbeccen``, each with
``err1``/``err2`` columns (upper, lower), ``ra``/``dec`` (degrees), ``st_teff``, ``st_logg``,
``default_flag``. Lines starting with ``#`` (the export's preamble) are skipped.

The ``ps`` table holds one row per publication: for each planet the mid-time and period are taken
together from one row (never mixed between publications): the default row where it has both,
otherwise the row with the latest mid-time (the longest baseline). The geometry (Rp/R*, a/R*,
inclination, duration, depth) comes from that row. Rows without a mid-time or period, or in
another time system, are passed over; a planet with no other row is left out (``skipped`` says why).
"""

from __future__ import annotations

import csv
import math
from dataclasses import dataclass, replace
from pathlib import Path

REQUIRED = ("pl_name", "pl_tranmid", "pl_orbper")
#: Time systems the mid-time may be given in: BJD in TDB (the archive writes ``BJD-TDB``).
BJD_TDB = frozenset({"BJD-TDB", "BJD_TDB", "BJDTDB", ""})


class EphemerisError(ValueError):
    """A table or value that cannot make an ephemeris; the message names the column and row."""


class UnusableRowError(EphemerisError):
    """A well-formed row that gives no ephemeris (no mid-time or period, another time system)."""


class EphemerisTable(dict):
    """Ephemerides by planet name; ``skipped`` says why each planet without a usable row is left out."""

    def __init__(self) -> None:
        super().__init__()
        self.skipped: dict[str, str] = {}


@dataclass(frozen=True)
class Ephemeris:
    """One planet's transit ephemeris and geometry. Times are BJD_TDB, durations days."""

    name: str
    t0: float  # a mid-transit time, BJD_TDB
    period: float  # days
    t0_err: float | None = None
    period_err: float | None = None
    host: str | None = None
    duration: float | None = None  # first to fourth contact (T14), days
    depth: float | None = None  # fraction (0.01 = 1 %)
    rp_rs: float | None = None
    rp_rs_err: float | None = None
    a_rs: float | None = None
    a_rs_err: float | None = None
    inc: float | None = None  # degrees
    inc_err: float | None = None
    ecc: float = 0.0
    ra: float | None = None  # degrees
    dec: float | None = None
    teff: float | None = None  # K
    logg: float | None = None  # cgs

    def __post_init__(self) -> None:
        if not (self.period > 0 and math.isfinite(self.period)):
            raise EphemerisError(f"{self.name}: the period must be positive, not {self.period}")
        if not math.isfinite(self.t0):
            raise EphemerisError(f"{self.name}: the mid-time T0 must be a number, not {self.t0}")

    def epoch(self, t_bjd: float) -> int:
        """The number of the transit nearest to ``t_bjd``."""
        return round((t_bjd - self.t0) / self.period)

    def predicted(self, epoch: int) -> tuple[float, float | None]:
        """The predicted mid-time of transit ``epoch`` and its uncertainty (None if unknown)."""
        tc = self.t0 + epoch * self.period
        if self.t0_err is None and self.period_err is None:
            return tc, None
        return tc, math.hypot(self.t0_err or 0.0, epoch * (self.period_err or 0.0))

    def geometry(self) -> tuple[float, float, float]:
        """Rp/R*, a/R* and inclination (degrees) for the model, filling gaps from the depth and duration.

        Rp/R* falls back to √depth; a/R* to the central-transit value for the duration,
        ``(1 + k) / sin(π T14 / P)``, with an inclination of 90°. ``EphemerisError`` if neither.
        """
        k = self.rp_rs if self.rp_rs is not None else (math.sqrt(self.depth) if self.depth else None)
        if k is None:
            raise EphemerisError(f"{self.name}: neither Rp/R* (pl_ratror) nor a depth (pl_trandep) is known")
        a_rs, inc = self.a_rs, self.inc
        if a_rs is None:
            if self.duration is None:
                raise EphemerisError(f"{self.name}: neither a/R* (pl_ratdor) nor a duration (pl_trandur) is known")
            a_rs = (1 + k) / math.sin(math.pi * self.duration / self.period)
            inc = inc if inc is not None else 90.0
        if inc is None:
            inc = 90.0
        return k, a_rs, inc

    def model_duration(self) -> float:
        """T14 in days from the geometry (the archive's own duration where there is no geometry)."""
        try:
            k, a_rs, inc = self.geometry()
        except EphemerisError:
            if self.duration is None:
                raise
            return self.duration
        return transit_duration(self.period, k, a_rs, inc)


def transit_duration(period: float, rp_rs: float, a_rs: float, inc_deg: float) -> float:
    """First to fourth contact (T14) of a circular orbit, days (Seager & Mallén-Ornelas 2003); 0 if it misses."""
    b = a_rs * math.cos(math.radians(inc_deg))
    chord = (1 + rp_rs) ** 2 - b**2
    if chord <= 0:
        return 0.0
    return period / math.pi * math.asin(min(1.0, math.sqrt(chord) / (a_rs * math.sin(math.radians(inc_deg)))))


def _number(row: dict[str, str], column: str, where: str) -> float | None:
    text = (row.get(column) or "").strip()
    if text == "":
        return None
    try:
        value = float(text)
    except ValueError:
        raise EphemerisError(f"{where}: {column} is not a number: {text[:40]!r}") from None
    if not math.isfinite(value):
        raise EphemerisError(f"{where}: {column} is not finite: {text[:40]!r}")
    return value


def _error(row: dict[str, str], column: str, where: str) -> float | None:
    """The larger of the upper and lower uncertainty (the archive gives err2 as negative)."""
    values = [abs(v) for v in (_number(row, column + "err1", where), _number(row, column + "err2", where)) if v]
    return max(values) if values else None


def _from_row(row: dict[str, str], where: str) -> Ephemeris:
    system = (row.get("pl_tsystemref") or "").strip().upper().replace(" ", "")
    if system not in BJD_TDB:
        raise UnusableRowError(f"{where}: pl_tsystemref is {system!r}; only BJD-TDB mid-times are accepted")
    duration_h = _number(row, "pl_trandur", where)
    depth_pc = _number(row, "pl_trandep", where)
    t0 = _number(row, "pl_tranmid", where)
    period = _number(row, "pl_orbper", where)
    if t0 is None or period is None:
        missing = "pl_tranmid" if t0 is None else "pl_orbper"
        raise UnusableRowError(f"{where}: {missing} is empty")
    if t0 < 2_400_000:
        raise EphemerisError(f"{where}: pl_tranmid {t0} is not a full BJD (expected about 2450000 or more)")
    if period <= 0:
        raise EphemerisError(f"{where}: pl_orbper must be positive, not {period}")
    ecc = _number(row, "pl_orbeccen", where)
    return Ephemeris(
        name=row["pl_name"].strip(),
        host=(row.get("hostname") or "").strip() or None,
        t0=t0,
        t0_err=_error(row, "pl_tranmid", where),
        period=period,
        period_err=_error(row, "pl_orbper", where),
        duration=duration_h / 24.0 if duration_h else None,
        depth=depth_pc / 100.0 if depth_pc else None,
        rp_rs=_number(row, "pl_ratror", where),
        rp_rs_err=_error(row, "pl_ratror", where),
        a_rs=_number(row, "pl_ratdor", where),
        a_rs_err=_error(row, "pl_ratdor", where),
        inc=_number(row, "pl_orbincl", where),
        inc_err=_error(row, "pl_orbincl", where),
        ecc=ecc or 0.0,
        ra=_number(row, "ra", where),
        dec=_number(row, "dec", where),
        teff=_number(row, "st_teff", where),
        logg=_number(row, "st_logg", where),
    )


GEOMETRY_FIELDS = ("host", "duration", "depth", "rp_rs", "rp_rs_err", "a_rs", "a_rs_err", "inc", "inc_err", "ra", "dec")
GEOMETRY_FIELDS += ("teff", "logg")


def _fill(chosen: Ephemeris, default: Ephemeris | None) -> Ephemeris:
    if default is None or default is chosen:
        return chosen
    gaps = {
        field: getattr(default, field)
        for field in GEOMETRY_FIELDS
        if getattr(chosen, field) is None and getattr(default, field) is not None
    }
    return replace(chosen, **gaps)


def parse_archive_csv(text: str, source: str = "CSV") -> EphemerisTable:
    """Ephemerides by planet name (``pl_name`` as the archive spells it) from an export's text.

    A malformed table (a missing column, a value that is not a number, a row of the wrong length)
    raises ``EphemerisError``. A planet with no usable row (the whole table holds non-transiting
    planets too, without a mid-time) is left out, its reason in ``skipped``.
    """
    lines = [(number, line) for number, line in enumerate(text.splitlines(), start=1) if not line.startswith("#")]
    lines = [(number, line) for number, line in lines if line.strip()]
    if not lines:
        raise EphemerisError(f"{source}: no header row (an empty file, or only comments)")
    header_number, header_line = lines[0]
    columns = [c.strip() for c in next(csv.reader([header_line]))]
    missing = [c for c in REQUIRED if c not in columns]
    if missing:
        raise EphemerisError(
            f"{source}: the header (line {header_number}) has no column {', '.join(missing)}; "
            f"an export of the planetary-systems table needs {', '.join(REQUIRED)}"
        )
    rows: dict[str, list[tuple[Ephemeris, bool]]] = {}
    problems: dict[str, str] = {}
    for (number, _), values in zip(lines[1:], csv.reader(line for _, line in lines[1:]), strict=True):
        if len(values) != len(columns):
            raise EphemerisError(f"{source} line {number}: {len(values)} values for {len(columns)} columns")
        row = dict(zip(columns, values, strict=True))
        name = row["pl_name"].strip()
        where = f"{source} line {number} ({name or 'no pl_name'})"
        if not name:
            raise EphemerisError(f"{where}: pl_name is empty")
        is_default = (row.get("default_flag") or "").strip() == "1"
        try:
            rows.setdefault(name, []).append((_from_row(row, where), is_default))
        except UnusableRowError as error:
            # A publication without a mid-time is common in the ps table: it matters only if no row serves.
            problems.setdefault(name, str(error))
            rows.setdefault(name, [])
    result = EphemerisTable()
    for name, candidates in rows.items():
        if not candidates:
            result.skipped[name] = problems[name]
            continue
        defaults = [e for e, is_default in candidates if is_default]
        chosen = defaults[0] if defaults else max((e for e, _ in candidates), key=lambda e: e.t0)
        result[name] = _fill(chosen, defaults[0] if defaults else None)
    return result


def read_archive_csv(path: str | Path) -> EphemerisTable:
    """Ephemerides by planet name from a NASA Exoplanet Archive CSV file (see the module's docstring)."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise EphemerisError(f"cannot read {path.name}: {error}") from error
    return parse_archive_csv(text, source=path.name)


#: The columns :func:`format_archive_csv` writes (a subset of the archive's, in its order).
ARCHIVE_COLUMNS = (
    "pl_name", "hostname", "default_flag", "pl_tranmid", "pl_tranmiderr1", "pl_tranmiderr2", "pl_tsystemref",
    "pl_orbper", "pl_orbpererr1", "pl_orbpererr2", "pl_trandur", "pl_trandep", "pl_ratror", "pl_ratrorerr1",
    "pl_ratrorerr2", "pl_ratdor", "pl_ratdorerr1", "pl_ratdorerr2", "pl_orbincl", "pl_orbinclerr1", "pl_orbinclerr2",
    "pl_orbeccen", "ra", "dec", "st_teff", "st_logg",
)  # fmt: skip


def format_archive_csv(ephemerides: list[Ephemeris], preamble: str = "") -> str:
    """Ephemerides as a NASA Exoplanet Archive CSV export (one default row per planet), as
    :func:`parse_archive_csv` reads it back; ``preamble`` lines are written as ``#`` comments."""

    def number(value: float | None, digits: int) -> str:
        return "" if value is None else f"{value:.{digits}f}"

    def errors(value: float | None, digits: int) -> list[str]:
        return ["", ""] if value is None else [number(value, digits), number(-value, digits)]

    lines = [f"# {line}" for line in preamble.splitlines()]
    lines.append(",".join(ARCHIVE_COLUMNS))
    for e in ephemerides:
        if "," in e.name or "," in (e.host or ""):
            raise EphemerisError(f"{e.name}: a name with a comma cannot be written to the CSV")
        cells = [e.name, e.host or "", "1", number(e.t0, 7), *errors(e.t0_err, 7), "BJD-TDB"]
        cells += [number(e.period, 9), *errors(e.period_err, 9)]
        cells += [number(None if e.duration is None else e.duration * 24.0, 5)]
        cells += [number(None if e.depth is None else e.depth * 100.0, 5)]
        cells += [number(e.rp_rs, 6), *errors(e.rp_rs_err, 6), number(e.a_rs, 5), *errors(e.a_rs_err, 5)]
        cells += [number(e.inc, 5), *errors(e.inc_err, 5), number(e.ecc, 4), number(e.ra, 7), number(e.dec, 7)]
        cells += [number(e.teff, 1), number(e.logg, 3)]
        lines.append(",".join(cells))
    return "\n".join(lines) + "\n"
