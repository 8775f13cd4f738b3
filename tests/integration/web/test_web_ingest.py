"""Thousands of messages through the real broker land in Postgres, none lost, across restarts and crashes."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import paho.mqtt.client as mqtt
import pytest
from sqlalchemy import func, select

from obsy.messages import Event, Reading, SafetyReason, SafetyVerdict, WeatherState
from obsy.topics import Topics
from obsy_web.db import make_engine, models
from obsy_web.db.migrate import upgrade
from obsy_web.ingest.ingestor import Ingestor
from obsy_web.ingest.subscriber import start_ingest_bus
from tests.support.configs import write_config
from tests.support.pgcluster import PrivateCluster
from tests.support.ports import free_port
from tests.support.web_server import RunningWeb, WebProcess

pytestmark = [pytest.mark.integration, pytest.mark.slow]


class Publisher:
    """A plain MQTT client publishing QoS 1 messages and waiting for the broker's acknowledgements."""

    def __init__(self, port: int) -> None:
        self.client = mqtt.Client(callback_api_version=mqtt.CallbackAPIVersion.VERSION2, client_id="test-publisher")
        self.client.max_inflight_messages_set(100)
        self.client.connect("127.0.0.1", port)
        self.client.loop_start()
        self.pending: list[mqtt.MQTTMessageInfo] = []

    def publish(self, topic: str, payload: bytes, retain: bool = False) -> None:
        self.pending.append(self.client.publish(topic, payload, qos=1, retain=retain))

    def flush(self) -> None:
        for info in self.pending:
            info.wait_for_publish(30)
        self.pending.clear()

    def close(self) -> None:
        self.flush()
        self.client.disconnect()
        self.client.loop_stop()


def count(engine, model) -> int:
    with engine.connect() as connection:
        return connection.execute(select(func.count()).select_from(model)).scalar_one()


def publish_batch(publisher: Publisher, start: int, stop: int, t0: datetime) -> None:
    for n in range(start, stop):
        event = Event(service="mcp", kind="test", message=f"event {n}", timestamp=t0 + timedelta(milliseconds=n))
        publisher.publish("obsy/mcp/events", event.to_json())
        if n % 4 == 0:
            when = t0 + timedelta(seconds=n)
            state = WeatherState(
                timestamp=when, readings={"sky_temperature": Reading(value=-20 + n / 1000, measured_at=when)}
            )
            publisher.publish("obsy/weather/state", state.to_json(), retain=True)
    publisher.flush()


def wait_for_count(engine, model, expected: int, timeout: float) -> int:
    deadline = time.monotonic() + timeout
    found = -1
    while time.monotonic() < deadline:
        try:
            found = count(engine, model)
        except Exception:  # the server may still be starting
            found = -1
        if found >= expected:
            return found
        time.sleep(0.2)
    return found


@pytest.fixture
def cluster() -> Iterator[PrivateCluster]:
    """A Postgres server of the test's own, which it may stop and start (never the shared one)."""
    server = PrivateCluster()
    try:
        server.init()
        server.start()
        yield server
    finally:
        server.remove()


def test_thousands_of_messages_survive_a_postgres_restart(mosquitto, cluster):
    engine = make_engine(cluster.url)
    upgrade(engine)
    ingestor = Ingestor(engine, Topics("obsy"), batch_size=200)
    ingestor.start()
    bus = start_ingest_bus(mosquitto.broker_config(), ingestor.submit_delivery)
    publisher = Publisher(mosquitto.port)
    t0 = datetime(2026, 11, 21, 20, 0, tzinfo=UTC)
    total = 4000
    try:
        publish_batch(publisher, 0, 1500, t0)
        assert wait_for_count(engine, models.EventRecord, 1, 20) >= 1
        cluster.stop()  # Postgres goes away in the middle of the stream
        publish_batch(publisher, 1500, 3000, t0)
        time.sleep(2)  # the ingestor keeps failing to write meanwhile
        assert not ingestor.database_ok
        cluster.start()
        publish_batch(publisher, 3000, total, t0)
        assert wait_for_count(engine, models.EventRecord, total, 60) == total, ingestor.health()
        assert ingestor.wait_idle(30)
        assert count(engine, models.EventRecord) == total
        assert count(engine, models.WeatherReading) == total // 4
        assert ingestor.retries >= 1
        assert ingestor.database_ok
        with engine.connect() as connection:
            messages = set(connection.execute(select(models.EventRecord.message)).scalars())
        assert messages == {f"event {n}" for n in range(total)}
    finally:
        publisher.close()
        bus.stop()
        ingestor.stop()
        engine.dispose()


def test_messages_sent_while_the_ingestor_is_away_arrive_when_it_returns(mosquitto, tmp_path):
    """The persistent session: the broker keeps QoS 1 messages for the fixed client id."""
    engine = make_engine(f"sqlite:///{tmp_path / 'obsy.sqlite3'}")
    upgrade(engine)
    ingestor = Ingestor(engine, Topics("obsy"))
    ingestor.start()
    config = mosquitto.broker_config()
    bus = start_ingest_bus(config, ingestor.submit_delivery)
    publisher = Publisher(mosquitto.port)
    t0 = datetime(2026, 11, 21, 20, 0, tzinfo=UTC)
    try:
        publish_batch(publisher, 0, 100, t0)
        assert wait_for_count(engine, models.EventRecord, 100, 20) == 100
        bus.stop()
        publish_batch(publisher, 100, 600, t0)  # nobody is connected to take these
        bus = start_ingest_bus(config, ingestor.submit_delivery)
        assert wait_for_count(engine, models.EventRecord, 600, 30) == 600
    finally:
        publisher.close()
        bus.stop()
        ingestor.stop()
        engine.dispose()


def test_the_service_waits_for_a_database_that_starts_after_it(mosquitto, cluster, tmp_path):
    """Compose starts Postgres and the web service together: the web service waits, then runs."""
    cluster.stop()
    web = RunningWeb(tmp_path, mosquitto, cluster.url)
    web.thread.start()
    time.sleep(2)
    assert web.thread.is_alive()  # still waiting, not failed
    cluster.start()
    try:
        web.start(timeout=60)  # the thread runs already: this waits for HTTP
        assert web.service.ingestor.database_ok
    finally:
        web.stop()


# --- crashes: nothing held in memory is lost, nothing is stored twice -------------------

TOPICS = Topics("obsy")
DRILL = "drill"  # a service name no real service uses: its rows are the test's own


def drill_event(text: str, when: datetime) -> tuple[str, bytes, bool]:
    return TOPICS.events(DRILL), Event(service=DRILL, kind="drill", message=text, timestamp=when).to_json(), False


def drill_messages(t0: datetime, events: int, changes: int) -> list[tuple[str, bytes, bool]]:
    """``events`` events and ``changes`` each of weather states, verdicts and availabilities.

    Every verdict and availability differs from the one before, so each must become a row.
    """
    messages = [drill_event(f"drill {n}", t0 + timedelta(milliseconds=n)) for n in range(events)]
    for n in range(changes):
        when = t0 + timedelta(seconds=n)
        reading = Reading(value=float(n), measured_at=when, source=DRILL)
        messages.append((TOPICS.weather_state, WeatherState(timestamp=when, readings={DRILL: reading}).to_json(), True))
        reasons = [] if n % 2 else [SafetyReason(quantity="rain", message=f"drill {n}")]
        verdict = SafetyVerdict(safe=bool(n % 2), reasons=reasons, timestamp=when)
        messages.append((TOPICS.weather_safety, verdict.to_json(), True))
        messages.append((TOPICS.availability(DRILL), b"offline" if n % 2 else b"online", True))
    return messages


def drill_rows(engine) -> dict[str, list]:
    """The rows the drill messages gave, per table, in time order."""
    with engine.connect() as connection:
        events = models.EventRecord
        readings = models.WeatherReading
        verdicts = models.SafetyVerdictRecord
        availability = models.AvailabilityChange
        return {
            "events": list(
                connection.execute(select(events.message).where(events.service == DRILL).order_by(events.time))
                .scalars()
                .all()
            ),
            "readings": list(
                connection.execute(select(readings.value).where(readings.quantity == DRILL).order_by(readings.time))
                .scalars()
                .all()
            ),
            "verdicts": list(connection.execute(select(verdicts.safe).order_by(verdicts.time)).scalars().all()),
            "availability": list(
                connection.execute(
                    select(availability.availability)
                    .where(availability.service == DRILL)
                    .order_by(availability.time, availability.id)
                )
                .scalars()
                .all()
            ),
        }


def expected_rows(events: int, changes: int) -> dict[str, list]:
    """What ``drill_rows`` must find: each message of ``drill_messages`` once, between "before" and "after"."""
    return {
        "events": ["before", *(f"drill {n}" for n in range(events)), "after"],
        "readings": [float(n) for n in range(changes)],
        "verdicts": [bool(n % 2) for n in range(changes)],
        "availability": ["offline" if n % 2 else "online" for n in range(changes)],
    }


def wait_until_stored(engine, event_text: str, timeout: float) -> None:
    """Wait for a drill event; the ingestor stores in arrival order, so what came before is handled too."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if event_text in drill_rows(engine)["events"]:
                return
        except Exception:  # the server may still be starting
            pass
        time.sleep(0.2)


def ingest_health(watcher) -> list[dict]:
    return [json.loads(m.payload)["details"]["ingest"] for m in watcher.on("obsy/web/health") if m.payload]


def test_killing_the_web_service_during_a_database_outage_loses_nothing_and_stores_nothing_twice(
    mosquitto, cluster, watcher, tmp_path
):
    """kill -9 of obsy-web while Postgres is down: the broker sends again what the process held."""
    config = write_config(
        tmp_path,
        mosquitto,
        web={"port": free_port(), "heartbeat_interval": 1},
        database={"url": cluster.url},
        run_dir=str(tmp_path),
    )
    engine = make_engine(cluster.url)
    publisher = Publisher(mosquitto.port)
    t0 = datetime(2026, 12, 5, 21, 0, tzinfo=UTC)
    events, changes = 40, 12
    web = WebProcess(config, tmp_path / "web-1.log")
    try:
        watcher.wait_payload("obsy/web/ingestor/availability", b"online", timeout=60)
        publisher.publish(*drill_event("before", t0 - timedelta(seconds=1)))
        publisher.flush()
        assert wait_for_count(engine, models.EventRecord, 1, 30) >= 1, web.log()
        engine.dispose()

        cluster.stop()
        for message in drill_messages(t0, events, changes):
            publisher.publish(*message)
        publisher.flush()
        # The web service has taken messages it cannot store yet (its health says so) ...
        watcher.wait_for(
            lambda _: any(
                not h["database_ok"] and h["received"] - h["stored_messages"] >= 10 for h in ingest_health(watcher)
            ),
            timeout=60,
        )
        web.kill()  # ... and dies with them.

        cluster.start()
        web = WebProcess(config, tmp_path / "web-2.log")
        publisher.publish(*drill_event("after", t0 + timedelta(hours=1)))
        publisher.flush()
        wait_until_stored(engine, "after", timeout=90)
        assert drill_rows(engine) == expected_rows(events, changes), web.log()
    finally:
        publisher.close()
        web.stop()
        engine.dispose()


def test_messages_stored_while_the_broker_was_away_and_sent_again_are_stored_once(mosquitto, cluster):
    """Commit without acknowledgement, provoked for real: the broker is down when the commit happens.

    The ingestor holds messages during a Postgres outage; the broker stops (its persistence keeps
    the session and what it sent without acknowledgement); Postgres comes back and the ingestor
    stores what it held, but cannot acknowledge; the broker starts and sends it all again, with
    the DUP flag. Nothing is stored twice, and the resent copies are acknowledged.
    """
    engine = make_engine(cluster.url)
    upgrade(engine)
    ingestor = Ingestor(engine, TOPICS)
    ingestor.start()
    bus = start_ingest_bus(mosquitto.broker_config(), ingestor.submit_delivery)
    publisher = Publisher(mosquitto.port)
    t0 = datetime(2026, 12, 5, 21, 0, tzinfo=UTC)
    events, changes = 6, 4  # 18 messages: all within Mosquitto's in-flight window (20)
    try:
        # Until the ingest session's subscription is in place a message is not kept for it (a loaded
        # machine may take a while): sent again until stored, the same message being stored once.
        deadline = time.monotonic() + 60
        while wait_for_count(engine, models.EventRecord, 1, 3) < 1 and time.monotonic() < deadline:
            publisher.publish(*drill_event("before", t0 - timedelta(seconds=1)))
            publisher.flush()
        assert wait_for_count(engine, models.EventRecord, 1, 20) == 1
        cluster.stop()
        for message in drill_messages(t0, events, changes):
            publisher.publish(*message)
        publisher.close()
        deadline = time.monotonic() + 30
        while bus.unacknowledged < 18 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert bus.unacknowledged >= 18  # held, not acknowledged: the database is away
        mosquitto.stop()
        cluster.start()
        assert ingestor.wait_idle(60)  # stored; the acknowledgements have no connection to go to
        stored = expected_rows(events, changes)
        stored["events"].remove("after")
        assert drill_rows(engine) == stored
        mosquitto.start()
        publisher = Publisher(mosquitto.port)
        publisher.publish(*drill_event("after", t0 + timedelta(hours=1)))
        publisher.flush()
        wait_until_stored(engine, "after", timeout=60)
        assert drill_rows(engine) == expected_rows(events, changes)
        assert ingestor.resends_skipped >= 18
        assert ingestor.wait_idle(20)
        assert bus.wait_idle()
        assert bus.unacknowledged == 0
    finally:
        publisher.close()
        bus.stop()
        ingestor.stop()
        engine.dispose()
