"""``obsy-mcp decision``: show or give the operator's decision that the MCP takes up when it starts.

The MCP keeps the operator's last decision in its state file (:mod:`obsy_mcp.operator_state`)
and reads it only when it starts. Without one (a fresh install) it opens nothing until an
operator decides or the next observing night begins. This command is the operator deciding
before the MCP runs: ``obsy-mcp decision --mode auto --night start`` lets it open by itself
tonight. While the MCP runs, decide on the bus instead (``<p>/mcp/mode/set``,
``<p>/mcp/night/set``, the web dashboard, Home Assistant): the running MCP rewrites the file
on its next change.

A latched alarm is not cleared here: it is cleared as always, by the MCP confirming the roof
closed or by the state the MCP's rules lead it to.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from datetime import UTC, datetime

from obsy.config import ConfigError, load_config
from obsy.messages import Mode
from obsy.nights import night_of
from obsy.runner import EXIT_CONFIG, EXIT_FAILED, EXIT_OK
from obsy_mcp import operator_state
from obsy_mcp.operator_state import OperatorState, StateFileError

NIGHT_ENDED_HERE = "night ended by the operator (obsy-mcp decision)"


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="obsy-mcp decision",
        description="Show the operator's decision the MCP restores when it starts, or give one "
        "(before the MCP starts; while it runs, send the command on the bus).",
    )
    parser.add_argument("--mode", choices=[m.value for m in Mode], help="auto, manual or off")
    parser.add_argument(
        "--night", choices=["start", "end"], help="start: the MCP may open tonight; end: tonight stays closed"
    )
    parser.add_argument("-c", "--config", help="YAML config file (default: $OBSY_CONFIG, then ./config/obsy.yaml)")
    return parser


def _describe(state: OperatorState) -> str:
    night = "goes on" if state.night_ended_for is None else f"{state.night_ended_for} ended ({state.night_end_reason})"
    lines = [f"mode: {state.mode.value}", f"night: {night}", f"alarm: {state.alarm or 'none'}"]
    if state.awaiting_operator:
        lines.append("waiting for an operator's decision (no saved decision was found at the last start)")
    return "\n".join(lines)


def decision_command(argv: Sequence[str]) -> int:
    """``obsy-mcp decision [--mode ...] [--night ...]``; ``argv`` starts with the word ``decision``."""
    args = _parser().parse_args(list(argv)[1:])
    try:
        config = load_config(args.config)
    except ConfigError as error:
        print(error.report("obsy-mcp decision"), file=sys.stderr)
        return EXIT_CONFIG
    path = operator_state.state_path(config)
    try:
        state = operator_state.load(path)
    except StateFileError as error:
        if args.mode is None and args.night is None:
            print(f"{error}\nThe MCP starts in its most cautious state: it opens nothing until an operator decides.")
            return EXIT_FAILED
        if not error.missing:  # reported here, and kept for people to look at, before a new one is written
            try:
                print(f"{error}; kept as {operator_state.set_aside(path)}", file=sys.stderr)
            except OSError as move_error:
                print(f"{error}; cannot set it aside ({move_error}): nothing written", file=sys.stderr)
                return EXIT_FAILED
        state = OperatorState()
    if args.mode is None and args.night is None:
        print(f"{path}:\n{_describe(state)}")
        return EXIT_OK
    state = state.decided(mode=None if args.mode is None else Mode(args.mode), start_night=args.night == "start")
    if args.night == "end":
        tonight = night_of(config.site, datetime.now(UTC))
        state = OperatorState(state.mode, tonight, NIGHT_ENDED_HERE, state.alarm, awaiting_operator=False)
    try:
        operator_state.save(path, state)
    except OSError as error:
        print(f"cannot write {path}: {error}", file=sys.stderr)
        return EXIT_FAILED
    print(f"{path}: saved; the MCP takes it up when it (re)starts\n{_describe(state)}")
    return EXIT_OK
