"""Fleet load: many sites, each on its own Mosquitto bridged to one central broker and web/Postgres.

Each simulated site is a real Mosquitto with the bridge ``deploy/make_bridge.py`` writes (plain
TCP on loopback), publishing what an OBSY site publishes at night, at its services' default
intervals (``SITE_MIX``: about 0.7 message/s per site). The central web service stores every
site in a fresh Postgres database, as in production. The load is raised step by step (a
multiple of the normal rates, all sites at once) until the centre falls behind; each step
reports:

* offered and stored messages per second (the web ingestor's own count);
* end-to-end lag, p50 and p99: from the moment a site publishes an event (its timestamp) to
  the moment the event's row is readable in Postgres (polled every ``POLL_S``), so it includes
  the site broker, the bridge, the central broker, the ingest queue and the commit;
* the ingest queue left at the end of the step, and how long it took to drain.

Then a burst: every site's queue after an outage of ``BURST_MIN`` minutes flushed at once (what
bridges do when the central broker comes back), and the time until all of it is stored.
Finally the database's growth per site-day at normal rates (Postgres' own size, indexes
included).

The load generator, 1 + N brokers, the web and Postgres all share this machine's cores, so the
ceiling found is this machine's, not the software's alone (docs/scaling.md says what scales
further). ``--sites=N`` (default 50), ``--step-s=S`` (default 40), ``--max-multiple=M``.
Postgres: ``OBSY_TEST_POSTGRES`` (default postgresql://postgres@127.0.0.1:5432/postgres).
"""

from __future__ import annotations

import contextlib
import importlib.util
import io
import multiprocessing
import sys
import tempfile
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import paho.mqtt.client as mqtt
from sqlalchemy import func, select, text

from obsy.messages import (
    AllskyFrame,
    CloudState,
    Event,
    McpState,
    Reading,
    SafetyVerdict,
    ServiceHealth,
    WeatherState,
)
from obsy.topics import Topics
from obsy_web.db import make_engine, models
from tests.support.mosquitto import MosquittoBroker
from tests.support.pgcluster import fresh_database
from tests.support.web_server import RunningWeb

ROOT = Path(__file__).resolve().parents[1]
TOPICS = Topics("obsy")
SERVICES = ("weather", "clouddetect", "allsky", "scheduler", "mcp", "imaging", "web")
#: Seconds between messages of each kind at a site, from the services' default intervals
#: (heartbeats 15 s, weather polled every 10 s, verdict and MCP state republished every 30 s,
#: one allsky frame and its cloud judgement a minute) and one event in 30 s.
SITE_MIX: dict[str, float] = {
    "health": 15.0 / len(SERVICES),
    "weather": 10.0,
    "verdict": 30.0,
    "mcp": 30.0,
    "allsky": 60.0,
    "clouds": 60.0,
    "event": 30.0,
}
PER_SITE_RATE = sum(1.0 / period for period in SITE_MIX.values())
MULTIPLES = (1, 4, 10, 20, 40, 80, 160)
POLL_S = 0.2
#: A step whose p99 lag exceeds this, or whose queue does not drain, is past the ceiling.
LAG_LIMIT_S = 5.0
BURST_MIN = 10
#: The kind of the events whose lag is measured.
PROBE_KIND = "fleet_bench"


def _health(site_index: int, n: int, now: datetime) -> tuple[str, bytes, bool]:
    service = SERVICES[n % len(SERVICES)]
    body = ServiceHealth(service=service, heartbeat_interval_s=15, uptime_s=n, timestamp=now)
    return TOPICS.health(service), body.to_json(), True


def _weather(site_index: int, n: int, now: datetime) -> tuple[str, bytes, bool]:
    quantities = ("temperature", "humidity", "dew_point", "pressure", "wind_speed", "sky_temperature")
    readings = {q: Reading(value=(n % 97) / 10, unit="u", measured_at=now) for q in quantities}
    return TOPICS.weather_state, WeatherState(readings=readings, timestamp=now).to_json(), True


def _verdict(site_index: int, n: int, now: datetime) -> tuple[str, bytes, bool]:
    return TOPICS.weather_safety, SafetyVerdict(safe=True, timestamp=now).to_json(), True


def _mcp(site_index: int, n: int, now: datetime) -> tuple[str, bytes, bool]:
    return TOPICS.mcp_state, McpState(state="observing", roof="open", timestamp=now).to_json(), True


def _allsky(site_index: int, n: int, now: datetime) -> tuple[str, bytes, bool]:
    frame = AllskyFrame(
        frame_id=f"{site_index}-{n}",
        night="2026-12-06",
        exposure_s=30.0,
        stars=900 + n % 50,
        sqm=21.2,
        url=f"/allsky/2026-12-06/{n}.jpg",
        width=3856,
        height=2180,
        timestamp=now,
    )
    return TOPICS.allsky_frames, frame.to_json(), False


def _clouds(site_index: int, n: int, now: datetime) -> tuple[str, bytes, bool]:
    state = CloudState(cloud_cover=5.0, label="clear", clear=True, frame_id=f"{site_index}-{n}", timestamp=now)
    return TOPICS.clouddetect_state, state.to_json(), True


def _event(site_index: int, n: int, now: datetime) -> tuple[str, bytes, bool]:
    event = Event(service="scheduler", kind=PROBE_KIND, message=f"site {site_index} event {n}", timestamp=now)
    return TOPICS.events("scheduler"), event.to_json(), False


#: What a site publishes, by kind: (topic, payload, retained) of its n-th message of that kind.
BUILDERS = {
    "health": _health,
    "weather": _weather,
    "verdict": _verdict,
    "mcp": _mcp,
    "allsky": _allsky,
    "clouds": _clouds,
    "event": _event,
}


def message(kind: str, site_index: int, n: int) -> tuple[str, bytes, bool]:
    """One message of ``kind`` as a site publishes it, stamped now: (topic, payload, retained)."""
    return BUILDERS[kind](site_index, n, datetime.now(UTC))


def publish_sites(ports: list[int], multiple: float, seconds: float, burst: int, ready) -> None:
    """Runs in its own process (the sites): each site's messages at ``multiple`` × normal rates.

    ``burst`` > 0 instead sends that many messages of the normal mix per site as fast as the
    brokers take them.
    """
    clients = []
    for index, port in enumerate(ports):
        client = mqtt.Client(callback_api_version=mqtt.CallbackAPIVersion.VERSION2, client_id=f"site-{index}")
        client.max_inflight_messages_set(1000)
        client.max_queued_messages_set(0)
        client.connect("127.0.0.1", port)
        client.loop_start()
        clients.append(client)
    ready.set()
    kinds = list(SITE_MIX)
    if burst:
        infos = []
        for n, kind in enumerate(offline_queue(burst)):
            for index, client in enumerate(clients):
                topic, payload, retain = message(kind, index, n)
                infos.append(client.publish(topic, payload, qos=1, retain=retain))
        for info in infos:
            info.wait_for_publish(120)
    else:
        start = time.monotonic()
        next_due = {(i, k): start + (i * 0.137) % SITE_MIX[k] / multiple for i in range(len(clients)) for k in kinds}
        counts = dict.fromkeys(next_due, 0)
        while (now := time.monotonic()) - start < seconds:
            due = [key for key, at in next_due.items() if at <= now]
            for key in due:
                index, kind = key
                topic, payload, retain = message(kind, index, counts[key])
                clients[index].publish(topic, payload, qos=1, retain=retain)
                counts[key] += 1
                next_due[key] += SITE_MIX[kind] / multiple
            time.sleep(max(0.0, min(next_due.values()) - time.monotonic()))
    for client in clients:
        client.disconnect()
        client.loop_stop()


def offline_queue(count: int) -> list[str]:
    """The kinds of the first ``count`` messages a site queues while its uplink is down, in time order."""
    duration = count / PER_SITE_RATE
    times = ((n * period, kind) for kind, period in SITE_MIX.items() for n in range(int(duration / period) + 1))
    schedule = sorted(times)
    return [kind for _, kind in schedule[:count]]


class LagProbe:
    """Reads the benchmark's events as they become visible in Postgres and keeps their lag."""

    def __init__(self, engine) -> None:
        self.engine = engine
        self.last_id = self._max_id()

    def _max_id(self) -> int:
        with self.engine.connect() as connection:
            return connection.execute(select(func.coalesce(func.max(models.EventRecord.id), 0))).scalar_one()

    def poll(self) -> list[float]:
        table = models.EventRecord
        with self.engine.connect() as connection:
            rows = connection.execute(
                select(table.id, table.time).where(table.id > self.last_id, table.kind == PROBE_KIND)
            ).all()
        seen = datetime.now(UTC)
        if rows:
            self.last_id = max(row.id for row in rows)
        return [(seen - row.time).total_seconds() for row in rows]


def percentile(values: list[float], q: float) -> float:
    return float(np.percentile(values, q)) if values else float("nan")


def database_bytes(engine) -> int:
    with engine.connect() as connection:
        return connection.execute(text("SELECT pg_database_size(current_database())")).scalar_one()


def largest_tables(engine, count: int = 5) -> list[tuple[str, int]]:
    """The tables that hold most of the bytes (indexes and TOAST included), largest first."""
    query = text(
        "SELECT relname, pg_total_relation_size(relid) FROM pg_catalog.pg_statio_user_tables "
        "ORDER BY 2 DESC LIMIT :count"
    )
    with engine.connect() as connection:
        return [(name, size) for name, size in connection.execute(query, {"count": count})]


def load_step(web: RunningWeb, probe: LagProbe, ports: list[int], multiple: float, seconds: float) -> dict:
    ingestor = web.service.ingestor
    context = multiprocessing.get_context("fork")
    ready = context.Event()
    sites = context.Process(target=publish_sites, args=(ports, multiple, seconds, 0, ready))
    sites.start()
    ready.wait(60)
    stored_before, started = ingestor.stored_messages, time.monotonic()
    lags: list[float] = []
    while sites.is_alive():
        lags += probe.poll()
        time.sleep(POLL_S)
    elapsed = time.monotonic() - started
    stored_in_step = ingestor.stored_messages - stored_before
    queued_at_end = ingestor.queued
    drain_started = time.monotonic()
    drained = ingestor.wait_idle(120)
    drain_s = time.monotonic() - drain_started
    lags += probe.poll()
    offered = len(ports) * PER_SITE_RATE * multiple
    return {
        "multiple": multiple,
        "offered": offered,
        "stored": stored_in_step / elapsed,
        "p50": percentile(lags, 50),
        "p99": percentile(lags, 99),
        "samples": len(lags),
        "queued": queued_at_end,
        "drain_s": drain_s if drained else float("inf"),
    }


def burst(web: RunningWeb, ports: list[int], per_site: int) -> tuple[int, float]:
    ingestor = web.service.ingestor
    context = multiprocessing.get_context("fork")
    ready = context.Event()
    sites = context.Process(target=publish_sites, args=(ports, 1, 0, per_site, ready))
    sites.start()
    ready.wait(60)
    before, started = ingestor.stored_messages, time.monotonic()
    expected = before + per_site * len(ports)
    while ingestor.stored_messages < expected and time.monotonic() - started < 600:
        time.sleep(0.1)
    sites.join(60)
    return ingestor.stored_messages - before, time.monotonic() - started


def make_bridge_module():
    spec = importlib.util.spec_from_file_location("make_bridge", ROOT / "deploy" / "make_bridge.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def option(name: str, default: float) -> float:
    """``--name=value`` from the command line (``python -m bench bench_fleet --sites=50``)."""
    for argument in sys.argv:
        if argument.startswith(f"{name}="):
            return float(argument.split("=", 1)[1])
    return default


@contextlib.contextmanager
def fleet(site_count: int, url: str) -> Iterator[tuple[RunningWeb, list[int]]]:
    """A central broker and web on ``url``, and ``site_count`` site brokers bridged to it."""
    generator = make_bridge_module()
    brokers: list[MosquittoBroker] = []
    web = None
    with tempfile.TemporaryDirectory(prefix="obsy-bench-fleet-") as tmp:
        workdir = Path(tmp)
        try:
            (workdir / "central").mkdir()
            central = MosquittoBroker(workdir / "central")
            central.start()
            brokers.append(central)
            ids = [f"s{n:02d}" for n in range(site_count)]
            for site in ids:
                (workdir / site).mkdir()
                argv = ["--site", site, "--central-host", "127.0.0.1", "--central-port", str(central.port), "--plain"]
                with contextlib.redirect_stdout(io.StringIO()):  # its "wrote ..." lines, 50 times
                    generator.main([*argv, "--out", str(workdir / site / "bridge")])
                conf = (workdir / site / "bridge" / "bridge.conf").read_text()
                broker = MosquittoBroker(workdir / site, extra_config=conf)
                broker.start()
                brokers.append(broker)
            (workdir / "web").mkdir()
            sites = [{"prefix": f"sites/{site}"} for site in ids]
            web = RunningWeb(workdir / "web", central, url, sites=sites).start(timeout=120)
            yield web, [broker.port for broker in brokers[1:]]
        finally:
            if web is not None:
                web.stop()
            for broker in reversed(brokers):
                with contextlib.suppress(Exception):
                    broker.stop()


def raise_until_behind(web: RunningWeb, engine, ports: list[int], step_s: float, max_multiple: float) -> None:
    """The load steps, up to the first the centre cannot keep up with; then the growth per site-day."""
    probe = LagProbe(engine)
    size_before, stored_before = database_bytes(engine), web.service.ingestor.stored_messages
    print("multiple  offered msg/s  stored msg/s  lag p50 s  lag p99 s  samples  queued  drain s")
    for multiple in (m for m in MULTIPLES if m <= max_multiple):
        row = load_step(web, probe, ports, multiple, step_s)
        print(
            f"{row['multiple']:>8}  {row['offered']:>13.0f}  {row['stored']:>12.0f}  {row['p50']:>9.2f}  "
            f"{row['p99']:>9.2f}  {row['samples']:>7}  {row['queued']:>6}  {row['drain_s']:>7.1f}",
            flush=True,
        )
        if row["p99"] > LAG_LIMIT_S or row["drain_s"] > step_s:
            print(
                f"ceiling: at {multiple}x ({row['offered']:.0f} msg/s offered) the centre falls behind "
                f"(p99 lag {row['p99']:.1f} s, queue drained in {row['drain_s']:.0f} s)"
            )
            break
    else:
        print(f"no ceiling up to {max_multiple:g}x")
    per_message = (database_bytes(engine) - size_before) / max(web.service.ingestor.stored_messages - stored_before, 1)
    print(
        f"database growth: {per_message:.0f} B/message (indexes included), about "
        f"{per_message * PER_SITE_RATE * 86400 / 1e6:.0f} MB per site-day at normal rates "
        f"({PER_SITE_RATE * 86400:.0f} messages)"
    )
    print("largest tables: " + ", ".join(f"{name} {size / 1e6:.1f} MB" for name, size in largest_tables(engine)))


def main() -> None:
    site_count = int(option("--sites", 50))
    step_s = option("--step-s", 40)
    max_multiple = option("--max-multiple", MULTIPLES[-1])
    try:
        database = fresh_database("obsy_bench_fleet")
        url = database.__enter__()
    except BaseException as exc:  # pytest.skip raises outside pytest too
        print(f"no Postgres for the benchmark: {exc}")
        return
    try:
        with fleet(site_count, url) as (web, ports):
            engine = make_engine(url)
            print(
                f"{site_count} sites bridged to one central broker and web/Postgres; normal rates "
                f"{PER_SITE_RATE:.2f} msg/s per site, {site_count * PER_SITE_RATE:.0f} msg/s in all"
            )
            raise_until_behind(web, engine, ports, step_s, max_multiple)
            per_site = int(PER_SITE_RATE * BURST_MIN * 60)
            stored, seconds = burst(web, ports, per_site)
            print(
                f"burst: {BURST_MIN} min offline at every site ({per_site} messages each, {per_site * site_count} "
                f"in all) stored in {seconds:.1f} s ({stored / seconds:.0f} msg/s; {stored} stored)"
            )
            engine.dispose()
    finally:
        with contextlib.suppress(Exception):
            database.__exit__(None, None, None)


if __name__ == "__main__":
    main()
