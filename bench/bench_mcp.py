"""How fast the MCP reacts: an unsafe verdict published on the broker -> the first INDI command sent.

A real Mosquitto and a real indiserver (indi_simulator_dome as the roof, the telescope
simulator as the mount, both parking where they stand so a cycle is quick) and the MCP
in-process. Each run: the MCP observes with the roof open; the bench publishes an unsafe
weather verdict and takes the time until the MCP hands its first command (abort mount
motion) to the INDI client (the controller's send hook, same clock); then it waits for
the roof to close, publishes a safe verdict and waits until the MCP has reopened.

The broker runs with ``set_tcp_nodelay true`` as the deployment's does. The publisher is a
paho client, as every OBSY service is; paho does not set TCP_NODELAY, so Nagle's algorithm
and the receiver's delayed ACK hold a small message back some 40 ms whenever an earlier one
is still unacknowledged: that, not the MCP, is most of the median. BENCH_MCP_NODELAY=1 sets
TCP_NODELAY on the publisher's socket to show the MCP's own share.

Prints the median, p90, p99 and maximum over the runs (default 200; BENCH_MCP_RUNS=n).
Target: p99 under 250 ms.
"""

from __future__ import annotations

import json
import os
import socket
import statistics
import tempfile
import threading
import time
from pathlib import Path

from obsy.indi import IndiClient
from obsy.topics import Topics
from tests.support.indiserver import DOME, TELESCOPE, IndiServer
from tests.support.mcp_harness import Heartbeats, Inputs, McpProcess, Sky, mcp_config
from tests.support.mosquitto import MosquittoBroker
from tests.support.watcher import Watcher

TOPICS = Topics()


def prepare(server: IndiServer) -> None:
    """Mount and dome park where they stand (no slews), roof open, mount unparked."""
    with IndiClient.from_config(server.config(), timeout=30.0) as client:
        for device in (DOME, TELESCOPE):
            client.connect_device(device)
        client.wait_for(TELESCOPE, "TELESCOPE_PARK", lambda p: any(p.values.values()))
        client.wait_for(DOME, "DOME_PARK", lambda p: any(p.values.values()))
        client.set_switch(TELESCOPE, "TELESCOPE_PARK_OPTION", "PARK_CURRENT")
        client.set_switch(DOME, "DOME_PARK_OPTION", "PARK_CURRENT")
        if client.get_switch(DOME, "DOME_PARK")["PARK"]:
            client.set_switch(DOME, "DOME_PARK", "UNPARK", wait=False)
            client.wait_for(DOME, "DOME_PARK", lambda p: p.state == "Ok" and p.values["UNPARK"], timeout=30)


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))]


class FirstSend:
    """The controller's INDI send hook: notes when the first command of a run goes out."""

    def __init__(self) -> None:
        self.sent = threading.Event()
        self.at = 0.0

    def reset(self) -> None:
        self.sent.clear()

    def __call__(self, device: str, prop: str, element: str) -> None:
        if not self.sent.is_set():
            self.at = time.perf_counter()
            self.sent.set()


def cycles(watcher: Watcher, inputs: Inputs, probe: FirstSend, runs: int) -> list[float]:
    """Unsafe -> first command (timed) -> closed -> safe -> observing again, ``runs`` times."""

    def wait_state(name: str, after: int) -> int:
        def reached(messages: list) -> bool:
            mine = [m for m in messages if m.topic == TOPICS.mcp_state][after:]
            return any(json.loads(m.payload)["state"] == name for m in mine)

        watcher.wait_for(reached, timeout=60)
        return len(watcher.on(TOPICS.mcp_state))

    if os.environ.get("BENCH_MCP_NODELAY") == "1":
        watcher.client.socket().setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    latencies: list[float] = []
    mark = wait_state("observing", 0)
    for _ in range(runs):
        probe.reset()
        published = time.perf_counter()
        inputs.weather(False, "rain detected")
        if not probe.sent.wait(10):
            raise RuntimeError("the MCP sent no INDI command within 10 s of the unsafe verdict")
        latencies.append(probe.at - published)
        mark = wait_state("closed_unsafe", mark)
        inputs.weather(True)
        mark = wait_state("observing", mark)
    return latencies


def main() -> None:
    runs = int(os.environ.get("BENCH_MCP_RUNS", "200"))
    with tempfile.TemporaryDirectory(prefix="bench-mcp-") as tmp:
        workdir = Path(tmp)
        (workdir / "broker").mkdir()
        # as deploy/mosquitto/mosquitto.conf: without it Nagle's algorithm and delayed ACKs
        # add some 40 ms to a small message now and then
        broker = MosquittoBroker(workdir / "broker", extra_config="set_tcp_nodelay true")
        broker.start()
        server = IndiServer(workdir / "indi", ["indi_simulator_dome", "indi_simulator_telescope"])
        server.start()
        probe = FirstSend()
        try:
            prepare(server)
            config = mcp_config(
                workdir, broker, server.config(), devices={"roof": DOME, "mount": TELESCOPE}, evaluate_interval=1.0
            )
            watcher = Watcher(broker.port, [TOPICS.mcp_state])
            inputs = Inputs(watcher, TOPICS, config)
            inputs.all_safe()
            process = McpProcess(config, Sky(-25.0), on_indi_send=probe).start()
            beats = Heartbeats(inputs).start()
            started = time.perf_counter()
            try:
                latencies = cycles(watcher, inputs, probe, runs)
            finally:
                beats.stop()
                process.stop()
                watcher.close()
            elapsed = time.perf_counter() - started
        finally:
            server.stop()
            broker.stop()
    ms = [v * 1000 for v in latencies]
    nodelay = " (publisher with TCP_NODELAY)" if os.environ.get("BENCH_MCP_NODELAY") == "1" else ""
    print(f"unsafe verdict on the broker -> first INDI command{nodelay}, {len(ms)} runs ({elapsed:.0f} s in all):")
    print(
        f"  median {statistics.median(ms):.1f} ms, p90 {percentile(ms, 90):.1f} ms, "
        f"p99 {percentile(ms, 99):.1f} ms, max {max(ms):.1f} ms (target p99 < 250 ms)"
    )


if __name__ == "__main__":
    main()
