"""A small service for testing the runner and the bus contract in a real process.

It subscribes to ``<prefix>/echo/text/set`` with a typed model and keeps a retained
state on ``<prefix>/echo/state`` with the last text and how many commands it took.
"""

from __future__ import annotations

import sys
from typing import Any

from obsy.messages import Message
from obsy.runner import Service, run_service


class EchoCommand(Message):
    text: str
    repeat: int = 1


class EchoState(Message):
    last_text: str = ""
    commands: int = 0


class EchoService(Service):
    name = "echo"
    poll_interval = 0.2

    def start(self) -> None:
        self.state = EchoState()
        self.bus.subscribe(self.topics.command("echo", "text"), self.on_text, EchoCommand)
        self.publish_state()

    def on_text(self, topic: str, command: EchoCommand) -> None:
        self.state = EchoState(last_text=command.text * command.repeat, commands=self.state.commands + 1)
        self.publish_state()

    def publish_state(self) -> None:
        self.bus.publish(self.topics.state("echo"), self.state, retain=True)

    def health_details(self) -> dict[str, Any]:
        return {"commands": self.state.commands}


if __name__ == "__main__":
    sys.exit(run_service(EchoService))
