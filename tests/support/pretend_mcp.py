"""Plays the MCP's part on the bus for the web service's tests (the MCP is another service)."""

from __future__ import annotations

import threading

import paho.mqtt.client as mqtt

from obsy.messages import Command, CommandOrigin, Event, McpState


class PretendMcp:
    """Plays the MCP's part on the bus.

    OPEN is refused with a ``command_rejected`` event (as obsy-mcp does); other commands are
    answered only by the new state, the bare echo the bus contract promises.
    """

    def __init__(self, port: int) -> None:
        self.commands: list[str] = []
        self.origins: list[CommandOrigin] = []
        self.client = mqtt.Client(callback_api_version=mqtt.CallbackAPIVersion.VERSION2, client_id="pretend-mcp")
        subscribed = threading.Event()
        self.client.on_subscribe = lambda *a: subscribed.set()
        self.client.on_message = self._on_command
        self.client.connect("127.0.0.1", port)
        self.client.subscribe("obsy/mcp/+/set", qos=1)
        self.client.loop_start()
        subscribed.wait(10)

    def _on_command(self, client, userdata, message) -> None:
        parsed = Command.parse(message.payload.decode())
        command = parsed.value
        self.commands.append(command)
        self.origins.append(parsed.origin)
        if command == "OPEN":
            event = Event(
                service="mcp",
                kind="command_rejected",
                level="warning",
                message="OPEN refused: unsafe (rain)",
                data={"command": {"thing": message.topic.split("/")[-2], "value": command}, "reasons": ["rain"]},
            )
            # A state first, as a periodic republish might come: the command event must still win.
            client.publish("obsy/mcp/state", McpState(state="closed", reason="raining").to_json(), qos=1, retain=True)
            client.publish("obsy/mcp/events", event.to_json(), qos=1)
        else:
            state = McpState(state="closing", reason=f"operator asked: {command}", roof="closing")
            client.publish("obsy/mcp/state", state.to_json(), qos=1, retain=True)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()
