"""Which masters calibrate a light, and which raw frames make one master: deterministic, explained rules.

Every master must have the light's camera, binning, gain, offset, readout mode and image size
(an unknown value matches only an unknown value) and a sensor temperature within
``temperature_tolerance`` of the light's (unknown matches only unknown). Then, per kind:

* bias — the newest matching master (within ``master_max_age`` when set);
* dark — one whose exposure equals the light's within ``exposure_tolerance`` (1 %), the newest;
  else, when a bias matched, the shortest dark longer than the light, scaled down by the
  exposure ratio after taking the bias off (darks are never scaled up: hot pixels and amp
  glow do not grow linearly for ever, and the noise would be scaled up with them);
* flat — the same filter and optical train (when both the flat and the light have a train), the
  nearest in time to the light (before or after: dawn flats serve the night before) within
  ``flat_max_age``; the newest among equally near.

Pins, two ways. A master of the library marked ``pinned`` (the user pinned it for its group) is
taken for every light of its group: one it fits by camera, temperature, the exposure of the
light (darks: no scaling) and filter and train (flats), whatever its age; among several
pinned ones that fit, the usual choice. A light that no pinned master fits gets the usual
choice. And ``pins`` (kind → master id) names the master for one plan: taken if it passes
the camera, temperature, exposure (darks) and filter (flats) rules, else refused with the
reason, never silently replaced. Ties are broken by build time, then id, so the same library
always gives the same answer.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import timedelta

from .frames import MASTER_KINDS, FrameInfo, FrameKind, MasterInfo


class GroupError(ValueError):
    """Raw frames that cannot make one master; the message names the frame and the difference."""


@dataclass(frozen=True)
class MatchRules:
    temperature_tolerance: float = 2.0  # °C
    exposure_tolerance: float = 0.01  # relative: darks, dark-flats and grouping
    flat_max_age: timedelta = timedelta(days=7)
    master_max_age: timedelta | None = None  # bias and darks; None: any age
    require_dark: bool = True
    require_flat: bool = True
    min_frames: int = 5  # a group is ready to become a master with this many frames
    session_gap: timedelta = timedelta(hours=6)  # raw frames further apart start a new group


@dataclass(frozen=True)
class MasterChoice:
    kind: FrameKind
    master: MasterInfo | None
    reason: str  # why this master, or "no match: …"
    scale: float = 1.0  # darks: the factor the dark is scaled by

    @property
    def found(self) -> bool:
        return self.master is not None


@dataclass(frozen=True)
class CalibrationPlan:
    """The masters for one light and why; ``ready`` is False while a required master is missing."""

    light: FrameInfo
    bias: MasterChoice
    dark: MasterChoice
    flat: MasterChoice
    rules: MatchRules = field(repr=False, default_factory=MatchRules)

    @property
    def uses_bias(self) -> bool:
        """The bias is taken off when the dark is scaled or there is no dark (a matching dark contains it)."""
        return self.bias.found and (not self.dark.found or self.dark.scale != 1.0)

    @property
    def missing(self) -> list[str]:
        waiting = []
        if self.rules.require_dark and not self.dark.found:
            waiting.append(f"dark: {self.dark.reason}")
        if self.rules.require_flat and not self.flat.found:
            waiting.append(f"flat: {self.flat.reason}")
        return waiting

    @property
    def ready(self) -> bool:
        return not self.missing

    def explanation(self) -> list[str]:
        lines = [f"{choice.kind}: {choice.reason}" for choice in (self.bias, self.dark, self.flat)]
        if self.bias.found and not self.uses_bias:
            lines[0] += " (not applied: the dark contains the bias)"
        return lines


def match_masters(
    light: FrameInfo,
    library: Sequence[MasterInfo],
    rules: MatchRules = MatchRules(),
    pins: Mapping[FrameKind | str, str] | None = None,
) -> CalibrationPlan:
    """Choose the bias, dark and flat for ``light`` from ``library``; ``pins`` maps a kind to a master id."""
    pins = {FrameKind(kind): master_id for kind, master_id in (pins or {}).items()}
    bias = _choose(FrameKind.BIAS, light, library, rules=rules, pins=pins, rule=_bias_rule(light, rules))
    dark = _choose_dark(light, library, rules, pins, bias)
    flat = _choose(FrameKind.FLAT, light, library, rules=rules, pins=pins, rule=_flat_rule(light, rules))
    return CalibrationPlan(light=light, bias=bias, dark=dark, flat=flat, rules=rules)


# A rule looks at one candidate: a refusal reason, or None and a sort key (higher wins) and a description.
Rule = Callable[[MasterInfo, bool], tuple[str | None, tuple, str]]


def _choose(kind, light, library, *, rules, pins, rule: Rule, fits_pin=lambda master: True) -> MasterChoice:
    """The master of ``kind`` for ``light``: named in ``pins``, else a pinned one of its group, else the best match.

    ``fits_pin`` narrows which pinned masters serve a light beyond ``rule`` (a pinned dark only
    lights of its own exposure: it is pinned for its group, not for every exposure it could be
    scaled to).
    """
    candidates = [m for m in library if m.kind == kind]
    if kind in pins:
        pinned = next((m for m in candidates if m.master_id == pins[kind]), None)
        if pinned is None:
            return MasterChoice(kind, None, f"no match: the pinned {kind} {pins[kind]!r} is not in the library")
        refusal = setup_difference(pinned, light, rules) or rule(pinned, True)[0]
        if refusal:
            return MasterChoice(kind, None, f"no match: the pinned {kind} {pinned.master_id} is refused: {refusal}")
        why = rule(pinned, True)[2]
        return MasterChoice(kind, pinned, f"{pinned.master_id} ({pinned.name}), pinned by the user; {why}")
    fitting_pins = [
        (rule(m, True)[1], _newest_key(m), m)
        for m in candidates
        if m.pinned and setup_difference(m, light, rules) is None and rule(m, True)[0] is None and fits_pin(m)
    ]
    if fitting_pins:
        fitting_pins.sort(key=lambda item: (item[0], item[1]), reverse=True)
        best = fitting_pins[0][2]
        return MasterChoice(
            kind,
            best,
            f"{best.master_id} ({best.name}), pinned by the user for its group: {_setup_text(best, light)}; "
            f"{rule(best, True)[2]}",
        )
    refusals: list[str] = []
    accepted = []
    for master in candidates:
        refusal = setup_difference(master, light, rules) or rule(master, False)[0]
        if refusal:
            refusals.append(refusal)
        else:
            _, key, why = rule(master, False)
            accepted.append((key, _newest_key(master), master, why))
    if not accepted:
        return MasterChoice(kind, None, _no_match(kind, refusals))
    accepted.sort(key=lambda item: (item[0], item[1]), reverse=True)
    _, _, best, why = accepted[0]
    others = f"best of {len(accepted)} matching" if len(accepted) > 1 else "the only match"
    return MasterChoice(kind, best, f"{best.master_id} ({best.name}): {_setup_text(best, light)}; {why}; {others}")


def _choose_dark(light, library, rules, pins, bias: MasterChoice) -> MasterChoice:
    def exact(master: MasterInfo) -> bool:
        return abs(master.exposure - light.exposure) <= rules.exposure_tolerance * light.exposure

    def rule(master: MasterInfo, pinned: bool):
        if not pinned and (age := _too_old(master, light, rules.master_max_age)):
            return age, (), ""
        if exact(master):
            return None, (1, 0.0), f"exposure {_s(master.exposure)} matches the light's {_s(light.exposure)}"
        if master.exposure < light.exposure:
            return f"exposure {_s(master.exposure)}, shorter than the light's (darks are only scaled down)", (), ""
        if not bias.found:
            return f"exposure {_s(master.exposure)} would need scaling, and no master bias matches", (), ""
        return (
            None,
            (0, -master.exposure),
            f"scaled by {light.exposure / master.exposure:.6g} from {_s(master.exposure)} "
            f"after taking off bias {bias.master.master_id}",
        )

    choice = _choose(FrameKind.DARK, light, library, rules=rules, pins=pins, rule=rule, fits_pin=exact)
    if choice.found and not exact(choice.master):
        return MasterChoice(choice.kind, choice.master, choice.reason, light.exposure / choice.master.exposure)
    return choice


def _bias_rule(light: FrameInfo, rules: MatchRules) -> Rule:
    def rule(master: MasterInfo, pinned: bool):
        if not pinned and (age := _too_old(master, light, rules.master_max_age)):
            return age, (), ""
        return None, (), f"built {_when(master)}"

    return rule


def _flat_rule(light: FrameInfo, rules: MatchRules) -> Rule:
    def rule(master: MasterInfo, pinned: bool):
        if master.filter != light.filter:
            return f"filter {master.filter} where the light has {light.filter}", (), ""
        if master.optical_train and light.optical_train and master.optical_train != light.optical_train:
            return f"optical train {master.optical_train} where the light has {light.optical_train}", (), ""
        apart = abs(master.time - light.time)
        if not pinned and apart > rules.flat_max_age:
            return f"taken {_days(apart)} from the light (limit {_days(rules.flat_max_age)})", (), ""
        train = f", optical train {master.optical_train}" if master.optical_train else ""
        return None, (-apart.total_seconds(),), f"filter {light.filter}{train}, taken {_days(apart)} from the light"

    return rule


def setup_difference(frame: FrameInfo, reference: FrameInfo, rules: MatchRules) -> str | None:
    """Why ``frame`` cannot serve ``reference`` (camera, binning, gain, offset, readout mode, size, temperature)."""
    for label, attribute in (
        ("camera", "camera"),
        ("binning", "binning"),
        ("gain", "gain"),
        ("offset", "offset"),
        ("readout mode", "readout_mode"),
    ):
        mine, theirs = getattr(frame, attribute), getattr(reference, attribute)
        if mine != theirs:
            return f"{label} {_v(mine)} where the {reference.kind} has {_v(theirs)}"
    if frame.shape is not None and reference.shape is not None and frame.shape != reference.shape:
        return f"size {_v(frame.shape)} where the {reference.kind} has {_v(reference.shape)}"
    if (frame.temperature is None) != (reference.temperature is None):
        return f"temperature {_t(frame.temperature)} where the {reference.kind} has {_t(reference.temperature)}"
    if frame.temperature is not None and abs(frame.temperature - reference.temperature) > rules.temperature_tolerance:
        return (
            f"temperature {_t(frame.temperature)}, more than {rules.temperature_tolerance:g} °C "
            f"from the {reference.kind}'s {_t(reference.temperature)}"
        )
    return None


# --- groups of raw frames -----------------------------------------------------------------------
@dataclass(frozen=True)
class FrameGroup:
    """Raw calibration frames that make one master."""

    kind: FrameKind
    frames: tuple[FrameInfo, ...]
    ready: bool  # at least min_frames

    @property
    def first(self) -> FrameInfo:
        return self.frames[0]


def group_frames(frames: Sequence[FrameInfo], rules: MatchRules = MatchRules()) -> list[FrameGroup]:
    """Split raw calibration frames into groups that can each become a master, in a stable order.

    Frames group together when they have the same kind, camera, binning, gain, offset, readout
    mode and size (flats: filter and optical train too), were taken within ``session_gap`` of
    the previous one, have exposures within ``exposure_tolerance`` (darks and dark-flats) and
    temperatures within ``temperature_tolerance`` of the group's first frame.
    """
    groups: list[list[FrameInfo]] = []
    ordered = sorted((f for f in frames if f.kind in MASTER_KINDS), key=lambda f: (f.time, f.name))
    for frame in ordered:
        for group in reversed(groups):
            if _joins(frame, group, rules):
                group.append(frame)
                break
        else:
            groups.append([frame])
    return [FrameGroup(g[0].kind, tuple(g), len(g) >= rules.min_frames) for g in groups]


def check_group(kind: FrameKind, frames: Sequence[FrameInfo], rules: MatchRules = MatchRules()) -> None:
    """Raise :class:`GroupError` naming the first frame that does not belong with the first one."""
    if not frames:
        raise GroupError(f"no frames for the master {kind}")
    first = frames[0]
    for frame in frames:
        if frame.kind != kind:
            raise GroupError(f"{frame.name} is a {frame.kind} frame, not a {kind} frame")
        if reason := _difference(frame, first, rules):
            raise GroupError(f"{frame.name} does not belong with {first.name}: {reason}")


def _joins(frame: FrameInfo, group: list[FrameInfo], rules: MatchRules) -> bool:
    return (
        frame.kind == group[0].kind
        and frame.time - group[-1].time <= rules.session_gap
        and _difference(frame, group[0], rules) is None
    )


def _difference(frame: FrameInfo, first: FrameInfo, rules: MatchRules) -> str | None:
    if reason := setup_difference(frame, first, rules):
        return reason
    exposures_differ = abs(frame.exposure - first.exposure) > rules.exposure_tolerance * first.exposure
    if frame.kind in (FrameKind.DARK, FrameKind.DARK_FLAT) and exposures_differ:
        return f"exposure {_s(frame.exposure)} where the {first.kind} has {_s(first.exposure)}"
    if frame.kind == FrameKind.FLAT and (frame.filter, frame.optical_train) != (first.filter, first.optical_train):
        return f"filter {frame.filter}/{frame.optical_train} where the flat has {first.filter}/{first.optical_train}"
    return None


# --- wording ------------------------------------------------------------------------------------
def _no_match(kind: FrameKind, refusals: list[str]) -> str:
    if not refusals:
        return f"no match: the library has no master {kind}"
    counted = Counter(refusals)
    parts = [f"{count} × {reason}" if count > 1 else reason for reason, count in sorted(counted.items())]
    plural = "s" if len(refusals) > 1 else ""
    return f"no match among {len(refusals)} master {kind}{plural}: " + "; ".join(parts)


def _too_old(master: MasterInfo, light: FrameInfo, limit: timedelta | None) -> str | None:
    if limit is None or abs(master.time - light.time) <= limit:
        return None
    return f"taken {_days(abs(master.time - light.time))} from the light (limit {_days(limit)})"


def _newest_key(master: MasterInfo) -> tuple:
    return (master.built or master.time, master.time, master.master_id)


def _setup_text(master: MasterInfo, light: FrameInfo) -> str:
    temperature = (
        "no temperature on either"
        if master.temperature is None
        else f"{abs(master.temperature - light.temperature):.1f} °C from the light"
    )
    return (
        f"{master.camera}, bin {master.binning[0]}×{master.binning[1]}, gain {_v(master.gain)}, "
        f"offset {_v(master.offset)}, mode {_v(master.readout_mode)}, {temperature}"
    )


def _when(master: MasterInfo) -> str:
    return (master.built or master.time).strftime("%Y-%m-%d %H:%M UTC")


def _v(value) -> str:
    if value is None:
        return "unknown"
    if isinstance(value, tuple):
        return "×".join(str(x) for x in value)
    return f"{value:g}" if isinstance(value, float) else str(value)


def _t(value: float | None) -> str:
    return "unknown" if value is None else f"{value:.1f} °C"


def _s(seconds: float) -> str:
    return f"{seconds:g} s"


def _days(delta: timedelta) -> str:
    hours = delta.total_seconds() / 3600
    return f"{hours:.1f} h" if hours < 48 else f"{hours / 24:.1f} days"
