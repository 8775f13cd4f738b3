"""Time from a changed input reading to the published safety verdict, through a real broker.

A sensor publishes wind speed on MQTT (as an ESPHome or Home Assistant sensor would), the
weather service reads it, re-evaluates and publishes ``obsy/weather/safety``; a second
client receives the verdict. Each change crosses the limit, so each one flips the verdict.
The figure is the whole path: sensor publish -> broker -> service -> broker -> consumer.

Target: p99 under 50 ms over 1,000 changes.

    python -m bench bench_weather
"""

from __future__ import annotations

import socket
import statistics
import tempfile
import threading
import time
from pathlib import Path

import paho.mqtt.client as mqtt

from obsy.messages import SafetyVerdict
from tests.support.mosquitto import MosquittoBroker
from tests.support.weather import RunningWeather

CHANGES = 1000
WIND_TOPIC = "bench/esphome/sensor/wind_speed/state"
SAFETY = "obsy/weather/safety"


class VerdictClient:
    """Publishes readings and waits for the verdict that follows each one."""

    def __init__(self, port: int) -> None:
        self.latest: bool | None = None
        self.received = threading.Condition()
        self.client = mqtt.Client(callback_api_version=mqtt.CallbackAPIVersion.VERSION2, client_id="bench-weather")
        self.client.on_message = self._on_message
        self.client.connect("127.0.0.1", port)
        # A sensor sends one small packet per reading; without TCP_NODELAY the kernel may hold it
        # back for the broker's delayed ACK of the previous one (about 40 ms on Linux).
        self.client.socket().setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.client.subscribe(SAFETY, qos=1)
        self.client.loop_start()

    def _on_message(self, client, userdata, message) -> None:
        if message.payload:
            safe = SafetyVerdict.model_validate_json(message.payload).safe
            with self.received:
                self.latest, self.at = safe, time.perf_counter()
                self.received.notify_all()

    def change(self, wind_kmh: float, expect_safe: bool, timeout: float = 5.0) -> float:
        """Publish one reading; seconds until the verdict ``expect_safe`` arrives."""
        with self.received:
            start = time.perf_counter()
            self.client.publish(WIND_TOPIC, f"{wind_kmh}", qos=0)
            if not self.received.wait_for(lambda: self.latest is expect_safe, timeout):
                raise TimeoutError(f"no verdict safe={expect_safe} within {timeout} s")
            return self.at - start

    def close(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()


def measure(changes: int, broker_config: str) -> list[float]:
    """Milliseconds from each published reading to the verdict it caused, sorted."""
    with tempfile.TemporaryDirectory() as tmp:
        broker = MosquittoBroker(Path(tmp), extra_config=broker_config)
        broker.start()
        try:
            source = {
                "type": "mqtt",
                "name": "bench",
                "sensors": [{"topic": WIND_TOPIC, "quantity": "wind_speed", "unit": "km/h"}],
            }
            limits = {"wind_speed": {"unsafe_above": 40}}
            with RunningWeather(
                Path(tmp), broker, sources=[source], limits=limits, safe_delay=0, heartbeat_interval=15
            ):
                client = VerdictClient(broker.port)
                try:
                    for _ in range(20):  # warm-up, not counted
                        client.change(50, False)
                        client.change(10, True)
                    latencies = [client.change(50 if i % 2 == 0 else 10, i % 2 == 1) for i in range(changes)]
                finally:
                    client.close()
        finally:
            broker.stop()
    return sorted(x * 1000 for x in latencies)


def report(title: str, ms: list[float]) -> None:
    p99 = ms[max(0, int(0.99 * len(ms)) - 1)]
    print(f"{title}: {len(ms)} changes, each flipping the verdict")
    print(f"  median {statistics.median(ms):6.2f} ms   p99 {p99:6.2f} ms   max {ms[-1]:6.2f} ms", end="")
    print(f"   (target p99 < 50 ms: {'met' if p99 < 50 else 'NOT met'})")


def main() -> None:
    # Mosquitto leaves Nagle's algorithm on unless told otherwise: a small packet then waits for
    # the peer's delayed ACK of the previous one (40 ms on Linux). Both figures are printed.
    report("reading -> verdict, broker with set_tcp_nodelay true", measure(CHANGES, "set_tcp_nodelay true"))
    report("reading -> verdict, broker with stock settings", measure(CHANGES // 5, ""))


if __name__ == "__main__":
    main()
