"""Comparison-star sequences: AAVSO Variable Star Plotter (VSP) charts, and the observer's own stars.

A VSP chart is read from the JSON of VSP's API (``https://app.aavso.org/vsp/api/chart/?format=json&star=…``,
or ``…/api/chart/<chart id>/?format=json``), saved by the user or fetched and cached here::

    {"chartid": "X28765BL", "star": "SS Cyg", "ra": "21:42:42.80", "dec": "43:35:09.9", "fov": 60, "maglimit": 14.5,
     "photometry": [{"auid": "000-BCP-182", "label": "86", "ra": "21:42:15.29", "dec": "43:29:38.1",
                     "bands": [{"band": "V", "mag": 8.609, "error": 0.001}, {"band": "B", "mag": 9.065, …}]}, …]}

RA is sexagesimal hours, Dec sexagesimal degrees (north without a sign); ``label`` may be a number;
``error`` may be null. VSP's bands are ``U``, ``B``, ``V``, ``Rc``, ``Ic``, ``J``, ``H``, ``K``; the
report's filter codes map onto them (``R`` → ``Rc``, ``I`` → ``Ic``, the tri-colour and unfiltered
codes onto the band they are reduced to).

VSP's photometry table (the page ``app.aavso.org/vsp/photometry``) saved as CSV is read too: one row
per star with the columns ``AUID``, ``RA``, ``Dec``, ``Label`` and either band columns (``V``,
``B``, ``Rc``…) or VSP's colour columns (``B-V``, ``U-B``, ``V-R``, ``R-I``, ``V-I``) next to ``V``;
a value is ``12.345`` or ``12.345 (0.021)`` (with its error). Its chart ID comes from a
``#CHART=<id>`` line or a ``Chart`` column (else ``chart_id`` must be given).

Fetching is opt-in and offline first: :func:`load_chart` uses a cached chart file without touching
the network; only when there is none, and fetching is on, does it ask VSP and keep the answer.
Every bad input raises :class:`ChartError` naming the file (or URL) and the star.
"""

from __future__ import annotations

import csv
import io
import json
import math
import re
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from obsy.files import write_atomic
from obsy_imaging.headers.values import angle_degrees, right_ascension_degrees
from obsy_imaging.photometry.differential import Sequence, Star

VSP_API = "https://app.aavso.org/vsp/api/chart/"

#: AAVSO report filter code → the VSP band whose magnitudes it is reduced to.
BAND_OF_FILTER = {
    "U": "U",
    "B": "B",
    "V": "V",
    "R": "Rc",
    "I": "Ic",
    "J": "J",
    "H": "H",
    "K": "K",
    "TB": "B",
    "TG": "V",
    "TR": "Rc",
    "CV": "V",
    "CR": "Rc",
}
#: Band names as people write them → VSP's spelling.
_BAND_SPELLING = {"RC": "Rc", "IC": "Ic", "R": "Rc", "I": "Ic"}
#: VSP photometry-table colour columns: (colour, the band it gives, the band it starts from, sign).
_COLOURS = (("B-V", "B", "V", +1), ("V-R", "Rc", "V", -1), ("R-I", "Ic", "Rc", -1), ("V-I", "Ic", "V", -1))
_COLOUR_U = ("U-B", "U", "B", +1)


class ChartError(ValueError):
    """A chart that cannot be used; the message names the file (or URL) and, where it is one, the star."""


@dataclass(frozen=True)
class ChartStar:
    """A comparison star of a chart, with its catalogue magnitude (and error, 0 when unknown) per band."""

    label: str
    auid: str | None
    ra_deg: float
    dec_deg: float
    bands: Mapping[str, tuple[float, float]]


@dataclass(frozen=True)
class Chart:
    """An AAVSO sequence: its chart ID, the variable star, its comparison stars, and where it came from."""

    chart_id: str | None
    star: str | None
    ra_deg: float | None
    dec_deg: float | None
    stars: tuple[ChartStar, ...]
    source: str
    notes: list[str] = field(default_factory=list)

    def find(self, name: str) -> ChartStar | None:
        """A star by its label or AUID (case and blanks ignored)."""
        key = _key(name)
        for star in self.stars:
            if _key(star.label) == key or (star.auid and _key(star.auid) == key):
                return star
        return None

    def bands(self) -> list[str]:
        return sorted({band for star in self.stars for band in star.bands})


def _key(name: str) -> str:
    return re.sub(r"\s+", "", name).casefold()


def band_of(filter_code: str) -> str:
    """The VSP band a report filter code is reduced to (``R`` → ``Rc``); a band's own name passes through."""
    code = filter_code.strip()
    return BAND_OF_FILTER.get(code.upper(), _BAND_SPELLING.get(code.upper(), code))


# --- reading -----------------------------------------------------------------------------
def read_chart(path: str | Path, *, chart_id: str | None = None) -> Chart:
    """A chart file: VSP's JSON, or its photometry table as CSV (by content, not name)."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise ChartError(f"chart file {path} does not exist") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ChartError(f"chart file {path} cannot be read: {exc}") from None
    stripped = text.lstrip()
    if stripped.startswith(("{", "[")) or path.suffix.lower() == ".json":
        return parse_chart_json(text, source=str(path))
    return parse_chart_csv(text, source=str(path), chart_id=chart_id)


def parse_chart_json(text: str | bytes, *, source: str) -> Chart:
    """VSP's API answer (``format=json``)."""
    try:
        data = json.loads(text)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        where = f" at line {exc.lineno}, column {exc.colno}" if isinstance(exc, json.JSONDecodeError) else ""
        raise ChartError(f"{source}: not valid JSON{where} (is it VSP's chart in format=json?)") from None
    if not isinstance(data, dict):
        raise ChartError(f"{source}: a VSP chart is a JSON object, not {type(data).__name__}")
    if "errors" in data and "photometry" not in data:  # VSP's answer to a bad request
        raise ChartError(f"{source}: VSP answered with an error: {_short(data['errors'])}")
    photometry = data.get("photometry")
    if not isinstance(photometry, list):
        raise ChartError(f"{source}: no 'photometry' list of comparison stars (is it VSP's chart in format=json?)")
    chart_id = _text(data.get("chartid"))
    stars = []
    for index, entry in enumerate(photometry, start=1):
        if not isinstance(entry, dict):
            raise ChartError(f"{source}: photometry entry {index} is not an object")
        label = _text(entry.get("label")) or _text(entry.get("auid")) or f"#{index}"
        name = f"{source}: comparison star {label}" + (f" ({entry['auid']})" if _text(entry.get("auid")) else "")
        ra, dec = right_ascension_degrees(entry.get("ra")), angle_degrees(entry.get("dec"))
        if ra is None or dec is None or not -90 <= dec <= 90:
            raise ChartError(f"{name}: unreadable coordinates ra={entry.get('ra')!r}, dec={entry.get('dec')!r}")
        bands = entry.get("bands")
        if not isinstance(bands, list):
            raise ChartError(f"{name}: no 'bands' list of magnitudes")
        mags: dict[str, tuple[float, float]] = {}
        for band in bands:
            if not isinstance(band, dict) or not _text(band.get("band")):
                raise ChartError(f"{name}: a band without a name: {_short(band)}")
            mag, error = _finite(band.get("mag")), _finite(band.get("error"))
            if mag is None:  # VSP lists a band without a value now and then: that band is simply not known
                continue
            mags[_text(band["band"])] = (mag, error if error is not None and error >= 0 else 0.0)
        stars.append(ChartStar(label, _text(entry.get("auid")), ra, dec, mags))
    ra, dec = right_ascension_degrees(data.get("ra")), angle_degrees(data.get("dec"))
    return Chart(chart_id, _text(data.get("star")), ra, dec, tuple(stars), source)


def parse_chart_csv(text: str, *, source: str, chart_id: str | None = None) -> Chart:
    """VSP's photometry table saved as CSV (see the module's text for the columns)."""
    lines = text.splitlines()
    for line in lines:
        match = re.match(r"\s*#\s*CHART\s*[=:]\s*(\S+)", line, re.IGNORECASE)
        if match:
            chart_id = chart_id or match.group(1)
    body = "\n".join(line for line in lines if line.strip() and not line.lstrip().startswith("#"))
    try:
        dialect = csv.Sniffer().sniff(body.splitlines()[0] if body else ",", delimiters=",;\t")
    except csv.Error:
        dialect = csv.excel
    rows = list(csv.DictReader(io.StringIO(body), dialect=dialect))
    if not rows:
        raise ChartError(f"{source}: no comparison stars (neither VSP's JSON nor a photometry table with rows)")
    columns = {(_text(c) or "").casefold(): c for c in rows[0] if c is not None}
    missing = [c for c in ("ra", "dec") if c not in columns]
    if missing or ("label" not in columns and "auid" not in columns):
        raise ChartError(
            f"{source}: a photometry table needs the columns AUID or Label, RA and Dec; it has {', '.join(rows[0])}"
        )
    band_columns = [c for c in rows[0] if c and _band_column(c)]
    stars = []
    for number, row in enumerate(rows, start=2):
        label = _text(row.get(columns.get("label", ""))) or _text(row.get(columns.get("auid", ""))) or f"row {number}"
        auid = _text(row.get(columns.get("auid", "")))
        name = f"{source}: comparison star {label}"
        raw_ra, raw_dec = (_table_angle(row.get(columns[c])) for c in ("ra", "dec"))
        ra, dec = right_ascension_degrees(raw_ra), angle_degrees(raw_dec)
        if ra is None or dec is None or not -90 <= dec <= 90:
            raise ChartError(f"{name}: unreadable coordinates ra={raw_ra!r}, dec={raw_dec!r}")
        values: dict[str, tuple[float, float]] = {}
        for column in band_columns:
            value = _mag_and_error(row.get(column), f"{name}, column {column}")
            if value is not None:
                values[_band_column(column)] = value
        stars.append(ChartStar(label, auid, ra, dec, _with_colours(values)))
    if chart_id is None:
        chart_column = columns.get("chart") or columns.get("chartid")
        chart_id = _text(rows[0].get(chart_column)) if chart_column else None
    return Chart(chart_id, None, None, None, tuple(stars), source)


def _table_angle(raw: Any) -> str | None:
    """VSP's table writes an angle as sexagesimal with the degrees after it in brackets: the first part."""
    text = _text(raw)
    return None if text is None else text.split("[")[0].strip()


def _band_column(column: str) -> str | None:
    name = column.strip()
    if name in ("U", "B", "V", "J", "H", "K") or name.upper() in ("RC", "IC", "R", "I"):
        return _BAND_SPELLING.get(name.upper(), name)
    if name.upper().replace(" ", "") in {c[0] for c in (*_COLOURS, _COLOUR_U)}:
        return name.upper().replace(" ", "")
    return None


def _with_colours(values: dict[str, tuple[float, float]]) -> dict[str, tuple[float, float]]:
    """Bands from VSP's colour columns: B = V + (B−V), Rc = V − (V−R), Ic = Rc − (R−I) or V − (V−I), U = B + (U−B)."""
    bands = {k: v for k, v in values.items() if "-" not in k}
    for colour, band, base, sign in (*_COLOURS, _COLOUR_U):
        if colour in values and base in bands and band not in bands:
            (c, ce), (b, be) = values[colour], bands[base]
            bands[band] = (b + sign * c, math.hypot(ce, be))
    return bands


def _mag_and_error(raw: Any, where: str) -> tuple[float, float] | None:
    text = _text(raw)
    if text is None or text.lower() in ("na", "-", "—"):
        return None
    match = re.fullmatch(r"([+-]?\d+(?:\.\d*)?)\s*(?:\(\s*(\d*\.?\d+)\s*\))?", text)
    if not match:
        raise ChartError(f"{where}: {text!r} is not a magnitude such as 12.345 or 12.345 (0.021)")
    return float(match.group(1)), float(match.group(2)) if match.group(2) else 0.0


def _text(value: Any) -> str | None:
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    text = str(value).strip()
    return text or None


def _finite(value: Any) -> float | None:
    if isinstance(value, bool) or value is None:
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def _short(value: Any, limit: int = 200) -> str:
    text = json.dumps(value, default=str) if not isinstance(value, str) else value
    return text if len(text) <= limit else text[: limit - 1] + "…"


# --- sequences ---------------------------------------------------------------------------
def chart_sequence(
    chart: Chart,
    *,
    band: str,
    target: str,
    target_ra_deg: float | None = None,
    target_dec_deg: float | None = None,
    check: str | None = None,
    comparisons: Iterable[str] | None = None,
) -> Sequence:
    """The sequence of a chart in one band: comparisons with their catalogue magnitude in ``band``
    (a report filter code or VSP's band name), the check star by label or AUID, the chart ID kept.

    ``comparisons`` names the stars to use (all with a magnitude in the band, the check star aside,
    when None). A named star that is not on the chart, or has no magnitude in the band, is an error.
    """
    vsp_band = band_of(band)
    ra = target_ra_deg if target_ra_deg is not None else chart.ra_deg
    dec = target_dec_deg if target_dec_deg is not None else chart.dec_deg
    if ra is None or dec is None:
        raise ChartError(f"{chart.source}: the chart gives no position for {target}; set the target's ra and dec")
    check_star = None
    if check is not None:
        found = chart.find(check)
        if found is None:
            raise ChartError(f"{chart.source}: check star {check} is not on the chart {chart.chart_id or ''}".rstrip())
        check_star = _star(found, vsp_band, chart, role="check star")
    if comparisons is None:
        chosen = [s for s in chart.stars if vsp_band in s.bands and (check_star is None or s.label != check_star.label)]
        if not chosen:
            raise ChartError(
                f"{chart.source}: no comparison star with a {vsp_band} magnitude"
                + (f" (the chart has {', '.join(chart.bands())})" if chart.bands() else " (the chart has none)")
            )
    else:
        chosen = []
        for name in comparisons:
            found = chart.find(name)
            if found is None:
                raise ChartError(f"{chart.source}: comparison star {name} is not on the chart")
            chosen.append(found)
        if not chosen:
            raise ChartError(f"{chart.source}: the list of comparison stars to use is empty")
    stars = tuple(_star(s, vsp_band, chart, role="comparison star") for s in chosen)
    return Sequence(Star(target, ra, dec), stars, check_star, chart_id=chart.chart_id)


def _star(star: ChartStar, band: str, chart: Chart, *, role: str) -> Star:
    if band not in star.bands:
        have = ", ".join(sorted(star.bands)) or "none"
        raise ChartError(f"{chart.source}: {role} {star.label} has no {band} magnitude (it has {have})")
    mag, error = star.bands[band]
    every_band = {name: m for name, (m, _) in star.bands.items()}
    return Star(star.label, star.ra_deg, star.dec_deg, mag, error, bands=every_band)


def own_sequence(
    target: str,
    ra_deg: float,
    dec_deg: float,
    stars: Iterable[Star],
    *,
    check: str | None = None,
) -> Sequence:
    """The observer's own comparison stars (no AAVSO chart: the report's CHART is ``na`` with a note)."""
    stars = list(stars)
    for star in stars:
        if star.mag is None:
            raise ChartError(f"own comparison star {star.label} of {target} has no magnitude")
    check_star = None
    if check is not None:
        matches = [s for s in stars if _key(s.label) == _key(check)]
        if not matches:
            raise ChartError(f"check star {check} of {target} is not among its comparison stars")
        check_star = matches[0]
    comparisons = tuple(s for s in stars if s is not check_star)
    if not comparisons:
        raise ChartError(f"{target} has no comparison star besides its check star")
    return Sequence(Star(target, ra_deg, dec_deg), comparisons, check_star, chart_id=None)


# --- fetching and the cache --------------------------------------------------------------
def chart_url(*, chart_id: str | None = None, star: str | None = None, base: str = VSP_API, **params: Any) -> str:
    """VSP's API URL of a chart by its ID, or of a new chart for a star (``fov``, ``maglimit``…)."""
    if chart_id:
        return urllib.parse.urljoin(base if base.endswith("/") else base + "/", f"{chart_id}/") + "?format=json"
    if not star:
        raise ValueError("a chart is asked for by its chart ID or by a star's name")
    query = {"format": "json", "star": star, **{k: v for k, v in params.items() if v is not None}}
    return base + "?" + urllib.parse.urlencode(query)


def cache_name(*, chart_id: str | None = None, star: str | None = None) -> str:
    if chart_id:
        return f"{re.sub(r'[^A-Za-z0-9]+', '_', chart_id)}.json"
    return f"star-{re.sub(r'[^a-z0-9]+', '_', (star or '').casefold()).strip('_')}.json"


def load_chart(
    *,
    chart_file: str | Path | None = None,
    chart_id: str | None = None,
    star: str | None = None,
    cache_dir: str | Path | None = None,
    fetch: bool = False,
    base_url: str = VSP_API,
    timeout_s: float = 20.0,
    fov_arcmin: float | None = None,
    maglimit: float | None = None,
) -> Chart:
    """A chart, offline first: the user's file; else the cached copy; else (only with ``fetch``) VSP's
    answer, kept in the cache for next time. Without a file and with fetching off, the error says
    what to do."""
    if chart_file is not None:
        return read_chart(chart_file, chart_id=chart_id)
    if chart_id is None and star is None:
        raise ChartError("a chart needs a chart_file, a chart_id or a star's name")
    what = f"AAVSO chart {chart_id}" if chart_id else f"an AAVSO chart of {star}"
    cached = Path(cache_dir) / cache_name(chart_id=chart_id, star=star) if cache_dir is not None else None
    if cached is not None and cached.is_file():
        return read_chart(cached, chart_id=chart_id)
    if not fetch:
        where = f" and there is no copy in {cached.parent}" if cached is not None else ""
        raise ChartError(
            f"{what} is needed, fetching charts is off (imaging.photometry.fetch_charts){where}: "
            "download it from VSP (format=json) and give it as chart_file"
        )
    url = chart_url(chart_id=chart_id, star=star, base=base_url, fov=fov_arcmin, maglimit=maglimit)
    body = fetch_url(url, timeout_s=timeout_s, what=what)
    chart = parse_chart_json(body, source=url)
    if chart_id and chart.chart_id and _key(chart.chart_id) != _key(chart_id):
        raise ChartError(f"{url}: VSP answered with chart {chart.chart_id}, not {chart_id}")
    if cached is not None:
        cached.parent.mkdir(parents=True, exist_ok=True)
        write_atomic(cached, body)
        chart = Chart(chart.chart_id, chart.star, chart.ra_deg, chart.dec_deg, chart.stars, str(cached), chart.notes)
    return chart


def fetch_url(url: str, *, timeout_s: float, what: str) -> bytes:
    """GET ``url``; every network failure becomes a :class:`ChartError` that says what happened."""
    request = urllib.request.Request(url, headers={"Accept": "application/json", "User-Agent": "OBSY imaging"})
    try:
        with urllib.request.urlopen(request, timeout=timeout_s) as response:
            return response.read(8 * 1024 * 1024 + 1)[: 8 * 1024 * 1024]
    except urllib.error.HTTPError as exc:
        raise ChartError(f"cannot fetch {what} from {url}: VSP answered HTTP {exc.code} {exc.reason}") from None
    except (urllib.error.URLError, TimeoutError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise ChartError(
            f"cannot fetch {what} from {url}: {reason} (offline? download the chart and give it as chart_file)"
        ) from None
