"""The one command contract (CommandAnswer, request ids) and the event kinds (EventKind): the models, that
every emit site names an EventKind member, and that docs/topics.md lists every kind."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

from obsy.messages import (
    Command,
    CommandAnswer,
    CommandOrigin,
    Event,
    EventKind,
    OriginKind,
    request_id_of,
)
from obsy_mcp.commands import Answer

ROOT = Path(__file__).resolve().parents[2]
SOURCES = [p for folder in ("services", "shared", "tools") for p in sorted((ROOT / folder).rglob("*.py"))]
SOURCES = [p for p in SOURCES if "tests" not in p.relative_to(ROOT).parts]
#: Calls that emit an event, and where their kind is: ``Event(kind=...)``, ``Problem(kind, ...)`` (imaging's
#: calibrator), and every helper found by its signature: a function whose first parameter is
#: ``kind: EventKind`` (``event``, ``_event``, ``_report``, ``_publish``...), and a parameter typed
#: ``EventSink`` (the MCP's event callback, kept as ``name`` or ``_name``).
EMITTERS = {"Problem"}


def _emitters(trees: dict[Path, ast.Module]) -> set[str]:
    names = set(EMITTERS)
    for tree in trees.values():
        for node in ast.walk(tree):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                args = [a for a in node.args.args + node.args.kwonlyargs if a.arg not in ("self", "cls")]
                first = node.args.args[1:] if node.args.args[:1] and node.args.args[0].arg == "self" else node.args.args
                annotation = first[0].annotation if first and first[0].arg == "kind" else None
                if annotation is not None and ast.unparse(annotation) == "EventKind":
                    names.add(node.name)
                for arg in args:
                    if arg.annotation is not None and ast.unparse(arg.annotation) == "EventSink":
                        names.update({arg.arg, f"_{arg.arg}"})
    names.discard("__call__")
    return names


def _kind_argument(call: ast.Call, emitters: set[str]) -> ast.expr | None:
    name = call.func.attr if isinstance(call.func, ast.Attribute) else getattr(call.func, "id", None)
    keywords = {k.arg: k.value for k in call.keywords}
    if name == "Event":
        return keywords.get("kind")
    if name in emitters:
        return call.args[0] if call.args else keywords.get("kind")
    return None


def _names_a_kind(node: ast.Assign) -> bool:
    """``FAILED_EVENT = ...``: the imaging workers' kind of their failure event."""
    return any(isinstance(t, ast.Name) and t.id.endswith("FAILED_EVENT") for t in node.targets)


def _is_free_string(node: ast.expr) -> bool:
    if isinstance(node, ast.Constant):
        return isinstance(node.value, str)
    if isinstance(node, ast.JoinedStr | ast.BinOp):
        return True
    if isinstance(node, ast.IfExp):
        return _is_free_string(node.body) or _is_free_string(node.orelse)
    return False


@pytest.mark.slow
def test_every_emit_site_names_an_event_kind_member_never_a_free_string() -> None:
    trees = {path: ast.parse(path.read_text(), str(path)) for path in SOURCES}
    emitters = _emitters(trees)
    assert {"event", "_event", "_report", "_publish"} <= emitters  # the check sees the helpers
    free, unknown, seen = [], [], set()
    members = set(EventKind.__members__)
    for path, tree in trees.items():
        where = path.relative_to(ROOT)
        for node in ast.walk(tree):
            if isinstance(node, ast.Call):
                kind = _kind_argument(node, emitters)
                if kind is not None and _is_free_string(kind):
                    free.append(f"{where}:{node.lineno}: {ast.unparse(kind)}")
            elif isinstance(node, ast.Assign) and _is_free_string(node.value) and _names_a_kind(node):
                free.append(f"{where}:{node.lineno}: {ast.unparse(node.value)}")
            if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id == "EventKind":
                if node.attr in members:
                    seen.add(node.attr)
                else:
                    unknown.append(f"{where}:{node.lineno}: EventKind.{node.attr}")
    assert not free, "event kinds given as free strings (name an EventKind member):\n" + "\n".join(free)
    assert not unknown, "no such EventKind member:\n" + "\n".join(unknown)
    assert {"ALARM", "TRANSITION", "COMMAND_ACCEPTED", "COMMAND_REJECTED", "MASTER_BUILT", "PLAN"} <= seen


def test_the_check_finds_a_free_string_kind() -> None:
    """The source check above can fail: it sees a literal kind and a formatted one."""
    tree = ast.parse(
        'Event(service="x", kind="alarm")\nself.event(f"command_{verb}", "m")\nself.event(EventKind.ALARM, "m")'
    )
    kinds = [_kind_argument(n, {"event"}) for n in ast.walk(tree) if isinstance(n, ast.Call)]
    assert [_is_free_string(k) for k in kinds if k is not None] == [True, True, False]


def documented_kinds() -> list[str]:
    text = (ROOT / "docs" / "topics.md").read_text()
    section = text.split("\n## Event kinds\n", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"^\| `([a-z_]+)` \|", section, flags=re.MULTILINE)


def test_docs_list_every_event_kind_once() -> None:
    documented = documented_kinds()
    assert len(documented) == len(set(documented)), "a kind is listed twice in docs/topics.md"
    assert set(documented) == {k.value for k in EventKind}, (
        f"missing in docs/topics.md: {sorted({k.value for k in EventKind} - set(documented))}; "
        f"not in EventKind: {sorted(set(documented) - {k.value for k in EventKind})}"
    )


def test_a_known_kind_becomes_the_enum_member_and_an_unknown_one_still_parses() -> None:
    event = Event.model_validate_json(b'{"service": "mcp", "kind": "alarm", "message": "rain"}')
    assert event.kind is EventKind.ALARM and event.known_kind
    newer = Event.model_validate_json(b'{"service": "mcp", "kind": "kind_from_a_newer_mcp", "data": {"x": 1}}')
    assert newer.kind == "kind_from_a_newer_mcp" and not newer.known_kind and newer.data == {"x": 1}
    assert b'"kind":"kind_from_a_newer_mcp"' in newer.to_json()
    assert b'"kind":"alarm"' in event.to_json()  # on the wire the same string as before
    with pytest.raises(ValueError, match="kind"):
        Event.model_validate({"service": "mcp", "kind": 7})


def test_an_answer_repeats_the_request_id_and_origin_and_says_the_reasons() -> None:
    origin = CommandOrigin(kind=OriginKind.WEB, user="ada", role="operator")
    answer = CommandAnswer.of("masters", "build", accepted=False, origin=origin, request_id="r-17", reasons=["busy"])
    event = answer.as_event("imaging")
    assert event.kind is EventKind.COMMAND_REJECTED and event.level == "warning"
    assert event.message == "masters build rejected (from web user ada, role operator): busy"
    assert event.data["request_id"] == "r-17" and event.data["reasons"] == ["busy"]
    assert event.data["command"] == {"thing": "masters", "value": "build"}
    assert event.data["origin"] == {"kind": "web", "user": "ada", "role": "operator"}
    back = CommandAnswer.from_event(Event.model_validate_json(event.to_json()))
    assert back == answer
    accepted = CommandAnswer.of("simulate", "rain", accepted=True, origin=None, request_id="r-18", values={"Precip": 1})
    assert accepted.as_event("weather").kind is EventKind.COMMAND_ACCEPTED
    assert CommandAnswer.from_event(accepted.as_event("weather")).model_extra == {"values": {"Precip": 1}}


def test_a_request_id_that_is_not_a_short_string_is_never_echoed() -> None:
    for bad in ("x" * 65, "", 12, None, ["r"]):
        assert CommandAnswer.of("roof", "?", accepted=False, origin=None, request_id=bad).request_id is None
    assert request_id_of('{"request_id": "abc", "value": 7}') == "abc"
    assert request_id_of('{"request_id": "' + "y" * 200 + '"}') is None
    assert request_id_of("OPEN") is None and request_id_of(b"{not json") is None


def test_an_old_mcp_answer_without_request_id_or_accepted_still_reads() -> None:
    stored = {
        "kind": "command_accepted",
        "data": {"command": {"thing": "roof", "value": "CLOSE"}, "reasons": [], "note": "", "deferred": False},
    }
    answer = CommandAnswer.from_event(stored)
    assert answer is not None and answer.accepted and answer.request_id is None
    assert answer.command.thing == "roof" and answer.model_extra == {"deferred": False}
    assert CommandAnswer.from_event({"kind": "transition", "data": {}}) is None
    assert CommandAnswer.from_event({"kind": "command_rejected", "data": {"reasons": "no command"}}) is None


def test_a_command_carries_a_request_id_and_a_bad_one_never_blocks_it() -> None:
    command = Command.parse('{"value": "OPEN", "request_id": "r1", "origin": {"kind": "cli"}}')
    assert command.request_id == "r1" and command.origin.kind is OriginKind.CLI
    close = Command.parse('{"value": "CLOSE", "request_id": "' + "z" * 500 + '"}')
    assert close.value == "CLOSE" and close.request_id is None
    assert Command.parse("CLOSE").request_id is None  # the plain form, as before


def test_the_mcp_answers_in_the_one_shape_with_the_request_id() -> None:
    origin = CommandOrigin.of_service("alpaca")
    event = Answer("roof", "OPEN", False, ["rain"], origin=origin, request_id="r9").event()
    answer = CommandAnswer.from_event(event)
    assert event.service == "mcp" and event.kind is EventKind.COMMAND_REJECTED
    assert answer is not None and answer.request_id == "r9" and answer.reasons == ["rain"]
    assert answer.origin == {"kind": "service", "service": "alpaca"}
    assert event.data["deferred"] is False and event.data["note"] == ""  # the MCP's fields, as before
    assert event.message == "roof OPEN rejected (from service alpaca): rain"
