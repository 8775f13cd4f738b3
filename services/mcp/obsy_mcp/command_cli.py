"""``obsy-mcp roof|mode|night VALUE``: send the MCP a command from the command line.

    obsy-mcp roof CLOSE          close the roof (always accepted)
    obsy-mcp mode manual         the operator takes over
    obsy-mcp night ABORT         end tonight's observing

The command goes over the bus like the web's and Home Assistant's, with the origin
``cli`` and the OS user and host, which the MCP records in its answer. The answer is
printed; the exit status is 0 when the MCP accepted, 1 when it rejected, 3 without an
answer in ``--timeout`` seconds.
"""

from __future__ import annotations

import argparse
import sys
import threading
import uuid
from typing import Any

from pydantic import ValidationError

from obsy.bus import Bus
from obsy.config import ConfigError, load_config
from obsy.messages import Command, CommandOrigin, validation_problems

EXIT_REJECTED = 1
EXIT_USAGE = 2
EXIT_NO_ANSWER = 3
THINGS = {"roof": "OPEN, CLOSE or STOP", "mode": "auto, manual or off", "night": "START or ABORT"}
#: Its bus connection's name: its Last Will lies in the mcp's own tree, which the broker's
#: ``mcp`` user may write (docker compose exec mcp obsy-mcp roof CLOSE).
BUS_NAME = "mcp/cli"


def _parser(thing: str) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=f"obsy-mcp {thing}", description=f"Send the MCP a {thing} command.")
    parser.add_argument("value", help=THINGS[thing])
    parser.add_argument("-c", "--config", help="YAML config file (default: $OBSY_CONFIG, then ./config/obsy.yaml)")
    parser.add_argument("--timeout", type=float, default=10.0, help="seconds to wait for the MCP's answer")
    return parser


def send_command(argv: list[str]) -> int:
    """``argv[0]`` is the thing (roof, mode, night); the rest its arguments."""
    thing = argv[0]
    args = _parser(thing).parse_args(argv[1:])
    try:
        config = load_config(args.config)
    except ConfigError as exc:
        print(exc.report("obsy-mcp"), file=sys.stderr)
        return EXIT_USAGE
    origin = CommandOrigin.command_line()
    request_id = uuid.uuid4().hex
    answer: dict[str, Any] = {}
    answered = threading.Event()

    def on_event(_topic: str, event: Any) -> None:
        data = event.get("data") if isinstance(event, dict) else None
        if not isinstance(data, dict) or not str(event.get("kind", "")).startswith("command_"):
            return
        if data.get("request_id") not in (None, request_id):
            return  # another sender's command
        # An MCP from before the request id: the thing and this process's origin say it is ours.
        if (data.get("command") or {}).get("thing") == thing and data.get("origin") == origin.as_data():
            answer.update(event)
            answered.set()

    try:
        command = Command(value=args.value, origin=origin, request_id=request_id)
    except ValidationError as error:
        print(f"obsy-mcp {thing}: {validation_problems(error)}", file=sys.stderr)
        return EXIT_USAGE
    bus = Bus(config.broker, BUS_NAME)
    # Subscribed on connecting, before the command goes out on the same connection: the broker
    # handles both in order, so the answer cannot be missed.
    bus.subscribe(bus.topics.events("mcp"), on_event, decode="json")
    try:
        if not bus.start(wait=5.0):
            print(f"obsy-mcp: no broker at {config.broker.host}:{config.broker.port}", file=sys.stderr)
            return EXIT_NO_ANSWER
        bus.publish(bus.topics.command("mcp", thing), command, qos=1)
        if not answered.wait(args.timeout):
            print(f"obsy-mcp: the MCP did not answer within {args.timeout:g} s (is obsy-mcp running?)", file=sys.stderr)
            return EXIT_NO_ANSWER
    finally:
        bus.stop()
    print(answer.get("message", ""))
    return 0 if answer.get("kind") == "command_accepted" else EXIT_REJECTED


COMMANDS = dict.fromkeys(THINGS, send_command)
