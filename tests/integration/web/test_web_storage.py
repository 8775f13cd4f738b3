"""The web service's storage on real Postgres and SQLite: migrations, ingest rows, retention."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, inspect, select

from obsy.config import WebRetentionConfig
from obsy.messages import Event, Reading, SafetyReason, SafetyVerdict, WeatherState
from obsy.topics import Topics
from obsy_web.db import make_engine, models
from obsy_web.db.migrate import current_revision, downgrade, head_revision, upgrade
from obsy_web.ingest.ingestor import Ingestor
from obsy_web.ingest.retention import apply_retention
from tests.support.web_databases import database_url, migrated_engine  # noqa: F401 (fixtures)

pytestmark = pytest.mark.integration
TOPICS = Topics("obsy")


def model_differences(engine) -> list:
    """What alembic's autogenerate finds between the database and the models (nothing, if they match)."""
    from alembic.autogenerate import compare_metadata  # alembic's autogenerate: for these tests only
    from alembic.runtime.migration import MigrationContext

    with engine.connect() as connection:
        return compare_metadata(MigrationContext.configure(connection), models.Base.metadata)


def test_migrations_from_empty_match_the_models_and_go_back_down(database_url):  # noqa: F811
    engine = make_engine(database_url)
    assert current_revision(engine) is None
    upgrade(engine)
    assert current_revision(engine) == head_revision()
    tables = set(inspect(engine).get_table_names())
    assert {"weather_readings", "events", "targets", "users", "sessions", "api_tokens"} <= tables
    differences = model_differences(engine)
    assert differences == [], f"models and migrations differ: {differences}"
    upgrade(engine)  # a second start finds nothing to do
    downgrade(engine, "base")
    assert set(inspect(engine).get_table_names()) <= {"alembic_version"}
    engine.dispose()


def count(engine, model) -> int:
    with engine.connect() as connection:
        return connection.execute(select(func.count()).select_from(model)).scalar_one()


def test_ingestor_stores_each_kind_once_and_skips_bad_payloads(migrated_engine):  # noqa: F811
    engine = migrated_engine
    ingestor = Ingestor(engine, TOPICS, batch_size=50)
    ingestor.start()
    t0 = datetime(2026, 11, 20, 22, 0, tzinfo=UTC)
    for minute in range(3):
        state = WeatherState(
            timestamp=t0 + timedelta(minutes=minute),
            readings={
                "humidity": Reading(
                    value=80 + minute, unit="%", source="sim", measured_at=t0 + timedelta(minutes=minute)
                ),
                "rain": Reading(value=False, source="sim", measured_at=t0 + timedelta(minutes=minute)),
            },
        )
        ingestor.submit(TOPICS.weather_state, state.to_json())
        ingestor.submit(TOPICS.weather_state, state.to_json())  # a retained replay: stored once
    unsafe = SafetyVerdict(safe=False, reasons=[SafetyReason(quantity="rain", message="rain detected")])
    ingestor.submit(TOPICS.weather_safety, unsafe.to_json())
    repeat = unsafe.model_copy(update={"timestamp": unsafe.timestamp + timedelta(seconds=5)})
    ingestor.submit(TOPICS.weather_safety, repeat.to_json())  # same verdict: not a change
    ingestor.submit(TOPICS.weather_safety, SafetyVerdict(safe=True).to_json())
    event = Event(service="mcp", kind="transition", message="closing: rain", data={"to": "closing"})
    ingestor.submit(TOPICS.events("mcp"), event.to_json())
    ingestor.submit(TOPICS.events("mcp"), event.to_json())  # a QoS 1 duplicate
    ingestor.submit(TOPICS.availability("mcp"), b"online")
    ingestor.submit(TOPICS.availability("mcp"), b"online")
    ingestor.submit(TOPICS.availability("mcp"), b"offline")
    # Bad input: counted and skipped, the rest of the batch is stored.
    ingestor.submit(TOPICS.weather_state, b"{not json")
    ingestor.submit(TOPICS.events("mcp"), json.dumps({"service": "mcp"}).encode())  # no kind
    ingestor.submit(TOPICS.availability("weather"), b"sideways")
    ingestor.submit(TOPICS.health("mcp"), b"anything")  # not a stored topic
    assert ingestor.wait_idle(20)
    ingestor.stop()

    assert count(engine, models.WeatherReading) == 6
    assert count(engine, models.SafetyVerdictRecord) == 2
    assert count(engine, models.EventRecord) == 1
    assert count(engine, models.AvailabilityChange) == 2
    assert ingestor.invalid == 3
    with engine.connect() as connection:
        humidity = connection.execute(
            select(models.WeatherReading.value, models.WeatherReading.time)
            .where(models.WeatherReading.quantity == "humidity")
            .order_by(models.WeatherReading.time)
        ).all()
        reasons = connection.execute(
            select(models.SafetyVerdictRecord.reasons).where(models.SafetyVerdictRecord.safe.is_(False))
        ).scalar_one()
    assert [value for value, _ in humidity] == [80, 81, 82]
    assert humidity[0][1] == t0
    assert reasons[0]["message"] == "rain detected"

    # A restarted ingestor remembers the last verdict and availability: no repeated rows.
    again = Ingestor(engine, TOPICS)
    again.start()
    again.submit(TOPICS.weather_safety, SafetyVerdict(safe=True).to_json())
    again.submit(TOPICS.availability("mcp"), b"offline")
    assert again.wait_idle(20)
    again.stop()
    assert count(engine, models.SafetyVerdictRecord) == 2
    assert count(engine, models.AvailabilityChange) == 2


def test_a_row_the_database_refuses_is_dropped_alone(migrated_engine):  # noqa: F811
    engine = migrated_engine
    ingestor = Ingestor(engine, TOPICS)
    ingestor.start()
    good = Event(service="mcp", kind="alarm", message="roof did not close")
    # A NUL character is valid JSON text but Postgres cannot store it; SQLite can.
    odd = Event(service="mcp", kind="note", message="nul \x00 inside")
    ingestor.submit(TOPICS.events("mcp"), good.to_json())
    ingestor.submit(TOPICS.events("mcp"), odd.to_json())
    assert ingestor.wait_idle(20)
    ingestor.stop()
    with engine.connect() as connection:
        kinds = set(connection.execute(select(models.EventRecord.kind)).scalars())
    assert "alarm" in kinds
    if engine.dialect.name == "postgresql":
        assert kinds == {"alarm"}
        assert ingestor.rejected_rows == 1
    else:
        assert kinds == {"alarm", "note"}


def test_retention_deletes_only_old_rows(migrated_engine):  # noqa: F811
    engine = migrated_engine
    now = datetime(2026, 11, 21, 12, 0, tzinfo=UTC)
    with engine.begin() as connection:
        for days in (1, 10, 40):
            connection.execute(
                models.WeatherReading.__table__.insert(),
                {"time": now - timedelta(days=days), "quantity": "humidity", "value": 50.0, "unit": "%", "source": "s"},
            )
            connection.execute(
                models.EventRecord.__table__.insert(),
                {
                    "time": now - timedelta(days=days),
                    "fingerprint": f"f{days}",
                    "service": "mcp",
                    "kind": "k",
                    "level": "info",
                    "message": "",
                    "data": {},
                },
            )
    deleted = apply_retention(engine, WebRetentionConfig(weather_days=7, events_days=0), now=now)
    assert deleted["weather_readings"] == 2
    assert count(engine, models.WeatherReading) == 1
    assert count(engine, models.EventRecord) == 3  # 0 days: kept for ever


def test_a_message_the_broker_sends_again_after_its_commit_is_stored_once(migrated_engine):  # noqa: F811
    """A crash between commit and acknowledgement: the resend (same packet id, DUP flag) adds nothing."""
    engine = migrated_engine
    acknowledged: list[int] = []
    t0 = datetime(2026, 12, 5, 21, 0, tzinfo=UTC)
    alarm = Event(service="mcp", kind="alarm", message="roof did not close", timestamp=t0).to_json()
    first = [
        (TOPICS.availability("mcp"), b"online", 1),
        (TOPICS.availability("mcp"), b"offline", 2),
        (TOPICS.events("mcp"), alarm, 3),
    ]

    def run(messages: list[tuple[str, bytes, int]], resent: bool) -> Ingestor:
        ingestor = Ingestor(engine, TOPICS)
        ingestor.start()
        for topic, payload, packet_id in messages:
            ingestor.submit(
                topic,
                payload,
                packet_id=packet_id,
                resent=resent,
                acknowledge=lambda p=packet_id: acknowledged.append(p),
            )
        assert ingestor.wait_idle(20)
        ingestor.stop()
        return ingestor

    run(first, resent=False)
    assert acknowledged == [1, 2, 3]  # each acknowledged once stored
    # The process died before the broker got the acknowledgements: a new one gets all three again.
    again = run(first, resent=True)
    assert again.resends_skipped == 3
    assert acknowledged == [1, 2, 3, 1, 2, 3]
    assert count(engine, models.AvailabilityChange) == 2  # without the receipts: online, offline, online, offline
    assert count(engine, models.EventRecord) == 1

    # The broker reuses a packet id for a new message once the old one is acknowledged; and a
    # resend whose first copy was never stored (the process died before its commit) is stored.
    changed = Event(service="mcp", kind="alarm_cleared", timestamp=t0 + timedelta(seconds=1)).to_json()
    later = run([(TOPICS.availability("mcp"), b"online", 2), (TOPICS.events("mcp"), changed, 3)], resent=True)
    assert later.resends_skipped == 0
    assert count(engine, models.AvailabilityChange) == 3
    assert count(engine, models.EventRecord) == 2

    # Two copies in one batch (a reconnect while the first was still held): stored once.
    cleared = Event(service="mcp", kind="alarm_cleared", message="again", timestamp=t0 + timedelta(seconds=2))
    twice = run([(TOPICS.events("mcp"), cleared.to_json(), 4)] * 2, resent=True)
    assert twice.resends_skipped == 1
    assert count(engine, models.EventRecord) == 3
    with engine.connect() as connection:
        receipts = connection.execute(select(func.count()).select_from(models.IngestReceipt)).scalar_one()
    assert receipts == 4  # one per packet id, never more than 65535


def test_the_site_migration_keeps_every_row_as_the_local_sites_and_keys_include_the_site(database_url):  # noqa: F811
    engine = make_engine(database_url)
    upgrade(engine, "0004_imaging")
    time = datetime(2026, 12, 6, 21, 0, tzinfo=UTC)
    verdict = SafetyVerdict(safe=True, timestamp=time)
    # A row as the service stored it before sites (no site column).
    with engine.begin() as connection:
        connection.exec_driver_sql(
            "INSERT INTO safety_verdicts (time, safe, since, reasons) VALUES (?, ?, NULL, '[]')"
            if engine.dialect.name == "sqlite"
            else "INSERT INTO safety_verdicts (time, safe, since, reasons) VALUES (%s, %s, NULL, '[]')",
            (time.replace(tzinfo=None) if engine.dialect.name == "sqlite" else time, True),
        )
    upgrade(engine, site_id="vienna")
    with engine.connect() as connection:
        assert connection.execute(select(models.SafetyVerdictRecord.site)).scalars().all() == ["vienna"]
    # The same verdict time from another site is another row; from this site, the same one.
    ingestor = Ingestor(engine, TOPICS, site="vienna", sites=[("north", Topics("sites/north"))])
    ingestor.start()
    try:
        ingestor.submit(TOPICS.weather_safety, verdict.to_json())
        ingestor.submit("sites/north/weather/safety", verdict.to_json())
        ingestor.submit("sites/north/weather/safety", SafetyVerdict(safe=False, timestamp=time).to_json())
        assert ingestor.wait_idle(30)
    finally:
        ingestor.stop()
    with engine.connect() as connection:
        rows = connection.execute(select(models.SafetyVerdictRecord.site, models.SafetyVerdictRecord.safe)).all()
    assert sorted(rows) == [("north", True), ("vienna", True)]
    differences = model_differences(engine)
    assert differences == [], f"models and migrations differ: {differences}"
    downgrade(engine, "0004_imaging", site_id="vienna")  # back to one site: the other site's rows go
    assert count(engine, models.SafetyVerdictRecord) == 1
    engine.dispose()
