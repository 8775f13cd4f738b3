"""``obsy-scheduler plan``: plan any night, without the running service, and write its Ekos files.

    obsy-scheduler plan --night 2026-11-21 --targets targets.json --out plans/

Targets come from a JSON file: ``{"targets": [...]}`` (a ``TargetList``, as the web
service publishes it) or a list of targets (as ``GET /api/v1/targets`` returns them).
Filters are checked like the service does (configured names, else the wheel's
INDI FILTER_NAME; unchecked, with a note, when neither is there). The files go to
``OUT/<night>/<run>/`` with frames in ``--fits-dir`` (default: the configured one) and the
plan is printed: each job with its times, and every excluded target with its reason.
Exoplanet targets are planned at their transits with the ephemerides of
``scheduler.transits.ephemeris_file`` (or ``--ephemerides FILE``).

    obsy-scheduler transits FILE [--night 2026-11-21] [--targets targets.json]

lists the night's transits at the site of the planets in FILE (a NASA Exoplanet Archive CSV
export): observable, partial (with what fails), and how many are not observable. With
``--targets``, only the planets that are targets, with their constraints and exposures;
without, every planet in FILE with the configured default constraints and ``--exposure``.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from datetime import date, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

from pydantic import ValidationError

from obsy.config import ConfigError, ObsyConfig, load_config
from obsy.messages import ExposurePlan, Target, TargetList, validation_problems
from obsy.transits.ephemeris import Ephemeris, EphemerisError, EphemerisTable, read_archive_csv
from obsy_scheduler.ekos import EkosFiles, write_plan
from obsy_scheduler.filters import FilterReadError, read_filter_names, wheel_filters
from obsy_scheduler.planner import Plan, Planner
from obsy_scheduler.transits import OBSERVABLE, PARTIAL, PredictedTransit

FILTER_READ_TIMEOUT_S = 3.0


class PlanCommandError(Exception):
    """Bad input for the plan command; the message says what is wrong."""


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="obsy-scheduler plan", description="plan a night and write its Ekos files")
    parser.add_argument("command", choices=["plan"])
    parser.add_argument(
        "--night", type=date.fromisoformat, help="the night's evening date, YYYY-MM-DD (default: tonight)"
    )
    parser.add_argument("--from", dest="start", help="plan nothing before this time (ISO 8601 with a time zone)")
    parser.add_argument("--targets", type=Path, required=True, help="targets as JSON")
    parser.add_argument("--out", type=Path, required=True, help="directory for the .esl/.esq files")
    parser.add_argument("--fits-dir", type=Path, help="Ekos' frame directory (default: the configured one)")
    parser.add_argument(
        "--ephemerides", type=Path, help="NASA Exoplanet Archive CSV (default: scheduler.transits.ephemeris_file)"
    )
    parser.add_argument("-c", "--config", help="YAML config file")
    return parser


def plan_command(argv: list[str]) -> int:
    args = _parser().parse_args(argv)
    try:
        config = load_config(args.config)
    except ConfigError as exc:
        print(exc.report("obsy-scheduler"), file=sys.stderr)
        return 2
    try:
        start = _start(args.start)
        targets = _read_targets(args.targets)
        ephemerides = _read_ephemerides(args.ephemerides or config.scheduler.transits.ephemeris_file)
    except PlanCommandError as exc:
        print(f"obsy-scheduler plan: {exc}", file=sys.stderr)
        return 1
    settings = config.scheduler
    try:
        filters = wheel_filters(
            settings.ekos, lambda device: read_filter_names(config.indi, device, FILTER_READ_TIMEOUT_S)
        )
    except FilterReadError as exc:
        filters = None
        print(f"obsy-scheduler plan: filters not checked: {exc}", file=sys.stderr)
    plan = Planner(config.site, settings).plan(
        targets, night=args.night, now=start, filters=filters, ephemerides=ephemerides
    )
    if not plan.blocks:
        print(_summary(plan, None, config))
        return 0
    fits_dir = args.fits_dir or settings.ekos.fits_dir or (config.data_dir / "frames")
    try:
        files = write_plan(plan, settings.ekos, args.out, fits_dir, config.site.timezone)
    except OSError as exc:
        print(f"obsy-scheduler plan: cannot write the Ekos files: {exc}", file=sys.stderr)
        return 1
    print(_summary(plan, files, config))
    return 0


def _start(text: str | None) -> datetime | None:
    if text is None:
        return None
    try:
        moment = datetime.fromisoformat(text)
    except ValueError as exc:
        raise PlanCommandError(f"--from {text!r} is not an ISO 8601 time: {exc}") from None
    if moment.tzinfo is None:
        raise PlanCommandError(f"--from {text!r} has no time zone (add +01:00 or Z)")
    return moment


def _read_ephemerides(path: Path | None) -> EphemerisTable | None:
    if path is None:
        return None
    try:
        return read_archive_csv(path.expanduser())
    except EphemerisError as exc:
        raise PlanCommandError(f"ephemerides: {exc}") from None


def _read_targets(path: Path) -> list[Target]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise PlanCommandError(f"cannot read {path}: {exc.strerror or exc}") from None
    except ValueError as exc:
        raise PlanCommandError(f"{path} is not JSON: {exc}") from None
    try:
        if isinstance(data, list):
            return [Target.model_validate(item) for item in data]
        return list(TargetList.model_validate(data).targets)
    except ValidationError as exc:
        raise PlanCommandError(f"{path} is not a list of targets: {validation_problems(exc)}") from None


def _summary(plan: Plan, files: EkosFiles | None, config: ObsyConfig) -> str:
    zone = ZoneInfo(config.site.timezone)

    def local(moment: datetime | None) -> str:
        return "-" if moment is None else moment.astimezone(zone).strftime("%Y-%m-%d %H:%M")

    lines = [f"night {plan.night}: dark {local(plan.dark_start)} to {local(plan.dark_end)} ({config.site.timezone})"]
    if files is None:
        lines.append("nothing to observe: no files written")
    else:
        lines.append(f"schedule: {files.schedule}")
        lines.append(f"frames:   {files.fits_dir}")
        for job in files.jobs:
            frames = ", ".join(
                f"{count}x{plan_.exposure_s:g}s {plan_.filter or '-'}" for plan_, count in job.exposures()
            )
            kind = "  transit" if job.transit else "  time series" if job.fixed else ""
            lines.append(f"  {local(job.start)} - {local(job.end)[-5:]}  {job.key}: {frames}{kind}")
    for target_id, reason in plan.excluded.items():
        lines.append(f"  excluded {target_id}: {reason}")
    return "\n".join(lines)


# --------------------------------------------------------------------------- transits


def _transits_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="obsy-scheduler transits", description="list the night's exoplanet transits observable at the site"
    )
    parser.add_argument("command", choices=["transits"])
    parser.add_argument("file", type=Path, help="NASA Exoplanet Archive CSV export (planetary systems table)")
    parser.add_argument(
        "--night", type=date.fromisoformat, help="the night's evening date, YYYY-MM-DD (default: tonight)"
    )
    parser.add_argument("--targets", type=Path, help="only these targets (JSON), with their constraints and exposures")
    parser.add_argument("--exposure", type=float, default=60.0, help="seconds per frame without --targets (default 60)")
    parser.add_argument("--all", action="store_true", help="list the transits that are not observable too")
    parser.add_argument("-c", "--config", help="YAML config file")
    return parser


def transits_command(argv: list[str]) -> int:
    args = _transits_parser().parse_args(argv)
    try:
        config = load_config(args.config)
    except ConfigError as exc:
        print(exc.report("obsy-scheduler"), file=sys.stderr)
        return 2
    if args.exposure <= 0:
        print("obsy-scheduler transits: --exposure must be positive", file=sys.stderr)
        return 1
    try:
        table = _read_ephemerides(args.file)
        targets = _read_targets(args.targets) if args.targets else None
    except PlanCommandError as exc:
        print(f"obsy-scheduler transits: {exc}", file=sys.stderr)
        return 1
    assert table is not None
    if targets is None:
        minimum = config.scheduler.constraints.min_altitude or 0.0
        targets = [
            _planet_target(eph, args.exposure)
            for eph in table.values()
            if eph.ra is not None and eph.dec is not None and 90.0 - abs(config.site.latitude - eph.dec) >= minimum
        ]
    plan = Planner(config.site, config.scheduler).plan(targets, night=args.night, ephemerides=table)
    print(_transits_summary(plan, config, show_all=args.all))
    return 0


def _planet_target(eph: Ephemeris, exposure_s: float) -> Target:
    return Target(
        id=eph.name,
        name=eph.name,
        ra_deg=float(eph.ra or 0.0) % 360.0,
        dec_deg=float(eph.dec or 0.0),
        exposure_plans=[ExposurePlan(exposure_s=exposure_s, count=1)],
    )


def _transits_summary(plan: Plan, config: ObsyConfig, *, show_all: bool) -> str:
    zone = ZoneInfo(config.site.timezone)

    def local(moment: datetime) -> str:
        return moment.astimezone(zone).strftime("%H:%M")

    order = {OBSERVABLE: 0, PARTIAL: 1}
    transits = sorted(plan.transits, key=lambda t: (order.get(t.status, 2), t.start))
    shown = [t for t in transits if show_all or t.status in order]
    lines = [f"night {plan.night} at {config.site.name or 'the site'} ({config.site.timezone}): "]
    counts = {status: sum(t.status == status for t in transits) for status in (OBSERVABLE, PARTIAL)}
    lines[0] += (
        f"{counts[OBSERVABLE]} observable, {counts[PARTIAL]} partial, "
        f"{len(transits) - counts[OBSERVABLE] - counts[PARTIAL]} not observable"
    )
    for transit in shown:
        lines.append(_transit_line(transit, local))
    return "\n".join(lines)


def _transit_line(transit: PredictedTransit, local: Callable[[datetime], str]) -> str:
    w = transit.window
    contacts = (
        f"T1 {local(w.ingress_utc.to_datetime(timezone=ZoneInfo('UTC')))} "
        f"Tc {local(w.tc_utc.to_datetime(timezone=ZoneInfo('UTC')))} "
        f"T4 {local(w.egress_utc.to_datetime(timezone=ZoneInfo('UTC')))}"
    )
    line = (
        f"  {transit.status:<12} {transit.planet}: block {local(transit.start)} - {local(transit.end)} "
        f"({contacts}), {transit.frames}x{transit.exposure.exposure_s:g}s"
    )
    if transit.min_altitude is not None:
        line += f", lowest {transit.min_altitude:.0f}°"
    if transit.reason:
        line += f": {transit.reason}"
    if transit.status == OBSERVABLE and not transit.planned and transit.note:
        line += f" (not planned: {transit.note})"
    return line
