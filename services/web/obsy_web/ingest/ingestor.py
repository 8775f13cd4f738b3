"""Batch writer from the bus to the database that survives database restarts and crashes.

The bus's dispatch thread only hands messages over (:meth:`Ingestor.submit_delivery`); a
writer thread takes up to ``batch_size`` of them at a time, turns them into rows and writes
them in one transaction with ``INSERT ... ON CONFLICT DO NOTHING`` (a retained state the
broker sends again after a reconnect, or a QoS 1 duplicate, is stored once).

Each message is acknowledged to the broker only after the transaction that stored it
commits. A process killed before that loses nothing: the broker sends the message again
(persistent session). A process killed between the commit and the acknowledgement gets it
again with the same packet id and the DUP flag; the transaction also records each
message's packet id and digest (``ingest_receipts``), so such a resend is recognised and
stored only once, even in tables without a natural key.

When the database is unreachable (restart, network) the batch is kept and retried with
a growing delay until it is written. Nothing is acknowledged meanwhile, so the broker's
in-flight window (Mosquitto's ``max_inflight_messages``) bounds what is held in memory and
the broker queues the rest for the session. A row the database refuses (a value out of
range, text it cannot store) is dropped alone, logged with its table and the reason; the
rest of the batch is stored. So is a message on a stored topic larger than
``web.ingest_max_payload``: counted in ``oversize`` and logged with its topic and size,
never parsed, never written.
"""

from __future__ import annotations

import json
import logging
import queue
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection, Engine, Table, desc, func, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError

from obsy.bus import Delivery
from obsy.topics import Topics
from obsy_web.db import models
from obsy_web.ingest.records import Incoming, InvalidMessageError, OversizeMessageError, Router, Row

log = logging.getLogger("obsy.web.ingest")

#: Errors that mean "the database is not there right now": keep the batch and retry.
TRANSIENT_ERRORS = (OperationalError, InterfaceError)
_MAX_RETRY_DELAY_S = 5.0
_INVALID_LOG_LIMIT = 20
#: A message and the rows it gives.
Parsed = tuple[Incoming, list[Row]]


def insert_ignoring_duplicates(table: Table, dialect: str) -> Any:
    """``INSERT ... ON CONFLICT DO NOTHING`` for Postgres or SQLite."""
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    return insert(table).on_conflict_do_nothing()


class Ingestor:
    def __init__(
        self,
        engine: Engine,
        topics: Topics,
        *,
        site: str = models.DEFAULT_SITE,
        sites: Iterable[tuple[str, Topics]] = (),
        max_payload: int = 1024 * 1024,
        batch_size: int = 500,
        max_queued: int = 200_000,
        flush_interval: float = 0.2,
        gather_s: float = 0.05,
    ) -> None:
        self.engine = engine
        self.router = Router(topics, max_payload, site)
        #: One router per site (this one first): a message goes to the one whose prefix it is under.
        self.routers = [self.router, *(Router(other, max_payload, name) for name, other in sites)]
        self.batch_size = batch_size
        self.flush_interval = flush_interval
        self.gather_s = gather_s
        self._queue: queue.Queue[Incoming] = queue.Queue(maxsize=max_queued)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._last_change: dict[tuple[str, ...], Any] = {}
        self._idle = threading.Condition()
        self._handled = 0
        # Counters for health and tests.
        self.received = 0
        self.stored_messages = 0
        self.invalid = 0
        self.oversize = 0
        self.rejected_rows = 0
        self.retries = 0
        self.resends_skipped = 0
        self.database_ok = True
        self.last_error: str | None = None

    # --- called from the bus ---------------------------------------------------------
    def submit(
        self,
        topic: str,
        payload: bytes,
        *,
        packet_id: int = 0,
        resent: bool = False,
        acknowledge: Callable[[], None] | None = None,
    ) -> None:
        """Queue one message for storage (blocks only when the bounded queue is full).

        ``acknowledge`` is called once the message is stored (or judged not worth storing).
        """
        self.received += 1  # only the bus's dispatch thread submits: no lock needed
        self._queue.put(Incoming(topic, payload, datetime.now(UTC), packet_id, resent, acknowledge))

    def submit_delivery(self, delivery: Delivery) -> None:
        """Queue a message from a manual-acknowledgement bus; it is acknowledged after its commit."""
        self.submit(
            delivery.topic,
            delivery.payload,
            packet_id=delivery.packet_id,
            resent=delivery.resent,
            acknowledge=delivery.ack,
        )

    # --- lifecycle -------------------------------------------------------------------
    def start(self) -> None:
        self._load_last_changes()
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="web-ingest", daemon=True)
        self._thread.start()

    def stop(self, flush_timeout: float = 10.0) -> None:
        """Write what is queued (for up to ``flush_timeout`` seconds), then stop the writer."""
        self.wait_idle(flush_timeout)
        self._stop.set()
        if self._thread is not None:
            self._thread.join(flush_timeout)
            self._thread = None

    def wait_idle(self, timeout: float) -> bool:
        """Wait until every submitted message has been written (or judged invalid)."""
        deadline = time.monotonic() + timeout
        with self._idle:
            while self._handled < self.received:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._idle.wait(min(remaining, 0.05))
        return True

    @property
    def queued(self) -> int:
        return self._queue.qsize()

    def health(self) -> dict[str, Any]:
        return {
            "database_ok": self.database_ok,
            "received": self.received,
            "stored_messages": self.stored_messages,
            "queued": self.queued,
            "invalid": self.invalid,
            "oversize": self.oversize,
            "rejected_rows": self.rejected_rows,
            "retries": self.retries,
            "resends_skipped": self.resends_skipped,
            "last_error": self.last_error,
        }

    # --- writer thread ---------------------------------------------------------------
    def _run(self) -> None:
        while not self._stop.is_set():
            batch = self._take_batch()
            if not batch:
                continue
            if self._store_batch(self._parse(batch)):
                self.stored_messages += len(batch)
                for message in batch:
                    if message.acknowledge is not None:
                        message.acknowledge()
            else:
                log.error(
                    "stopping while the database is unreachable: %d messages not stored and not acknowledged; "
                    "the broker sends them again",
                    len(batch),
                )
            with self._idle:
                self._handled += len(batch)
                self._idle.notify_all()

    def _take_batch(self) -> list[Incoming]:
        try:
            first = self._queue.get(timeout=self.flush_interval)
        except queue.Empty:
            return []
        # Gather for a moment after the first message: fewer, larger transactions cost less
        # (and take the interpreter from the bus's threads less often) than one per trickle.
        batch = [first]
        deadline = time.monotonic() + self.gather_s
        while len(batch) < self.batch_size:
            remaining = deadline - time.monotonic()
            try:
                batch.append(self._queue.get(timeout=remaining) if remaining > 0 else self._queue.get_nowait())
            except queue.Empty:
                break
        return batch

    def _parse(self, batch: Iterable[Incoming]) -> list[Parsed]:
        """Each message with its rows; an invalid one is counted and logged once, and keeps no rows."""
        parsed: list[Parsed] = []
        for message in batch:
            try:
                parsed.append((message, self.router_for(message.topic).rows_for(message)))
            except InvalidMessageError as exc:
                self.oversize += isinstance(exc, OversizeMessageError)
                self.invalid += 1
                if self.invalid <= _INVALID_LOG_LIMIT or self.invalid % 1000 == 0:
                    log.warning("not stored: %s (%d invalid so far)", exc, self.invalid)
                parsed.append((message, []))
        return parsed

    def router_for(self, topic: str) -> Router:
        """The router of the site whose prefix ``topic`` is under (this site's when none is)."""
        for router in self.routers[1:]:
            if topic.startswith(router.topics.prefix + "/"):
                return router
        return self.router

    def _store_batch(self, parsed: list[Parsed]) -> bool:
        """Store a batch in one transaction, retrying while the database is away; False if stopped first."""
        try:
            return self._until_done(lambda: self._store(parsed))
        except DBAPIError as exc:
            log.warning("a batch was refused (%s); storing its rows one by one", _short(exc))
            return self._store_row_by_row(parsed)

    def _store(self, parsed: list[Parsed]) -> None:
        with self.engine.begin() as connection:
            fresh = self._not_stored_before(connection, parsed)
            rows, changes = self._changed_rows(fresh)
            self._insert(connection, rows)
            self._record_receipts(connection, parsed)
        self._last_change.update(changes)
        self.resends_skipped += len(parsed) - len(fresh)

    def _store_row_by_row(self, parsed: list[Parsed]) -> bool:
        """Each row in its own transaction: a row the database refuses is dropped alone."""
        # Retried on any database error: these statements hold no row that could be refused.
        fresh: list[Parsed] = []

        def look_up_resends() -> None:
            fresh.extend(self._in_transaction(self._not_stored_before, parsed))

        if not self._until_done(look_up_resends, retry_on=DBAPIError):
            return False
        self.resends_skipped += len(parsed) - len(fresh)
        rows, changes = self._changed_rows(fresh)
        for row in rows:
            try:
                if not self._until_done(lambda row=row: self._in_transaction(self._insert, [row])):
                    return False
            except DBAPIError as exc:
                self.rejected_rows += 1
                log.error("dropped a row for %s that the database refused: %s", row.table.name, _short(exc))
        self._last_change.update(changes)
        return self._until_done(lambda: self._in_transaction(self._record_receipts, parsed), retry_on=DBAPIError)

    def _until_done(
        self, attempt: Callable[[], object], retry_on: type[Exception] | tuple[type[Exception], ...] = TRANSIENT_ERRORS
    ) -> bool:
        """Run ``attempt`` until the database takes it, waiting longer after each ``retry_on`` error.

        Other database errors are raised. False when the ingestor is stopped first: what it
        held is not acknowledged, so the broker sends it again to the next start.
        """
        delay = 0.2
        while True:
            try:
                attempt()
            except retry_on as exc:
                self._note_outage(exc)
            else:
                if not self.database_ok:
                    log.info("database is back; stored what waited")
                self.database_ok = True
                return True
            if self._stop.wait(delay):
                return False
            delay = min(delay * 2, _MAX_RETRY_DELAY_S)

    def _note_outage(self, exc: Exception) -> None:
        self.retries += 1
        self.last_error = _short(exc)
        if self.database_ok:
            log.warning("cannot write to the database (%s); holding messages and retrying", self.last_error)
        self.database_ok = False

    def _in_transaction(self, work: Callable[[Connection, Any], Any], argument: Any) -> Any:
        with self.engine.begin() as connection:
            return work(connection, argument)

    def _not_stored_before(self, connection: Connection, parsed: list[Parsed]) -> list[Parsed]:
        """Leave out resends (DUP flag) of a message already stored under the same packet id.

        The broker resends a message that was not acknowledged: after a crash between the
        commit and the acknowledgement the first copy is in ``ingest_receipts``; after a
        reconnect while the first copy was still held, both copies may be in this batch.
        """
        resent_ids = {message.packet_id for message, _ in parsed if message.resent and message.packet_id}
        receipts = models.IngestReceipt.__table__
        stored: dict[int, str] = {}
        if resent_ids:
            query = select(receipts.c.packet_id, receipts.c.digest).where(receipts.c.packet_id.in_(resent_ids))
            stored = {packet_id: digest for packet_id, digest in connection.execute(query)}
        fresh: list[Parsed] = []
        for message, rows in parsed:
            if message.packet_id:
                if message.resent and stored.get(message.packet_id) == message.digest:
                    continue
                stored[message.packet_id] = message.digest
            fresh.append((message, rows))
        return fresh

    def _changed_rows(self, parsed: list[Parsed]) -> tuple[list[Row], dict[tuple[str, ...], Any]]:
        """The rows to insert, and the new last values for change detection (kept only after the commit)."""
        changes: dict[tuple[str, ...], Any] = {}
        rows: list[Row] = []
        for _, found in parsed:
            for row in found:
                if row.change_key is not None:
                    last = changes.get(row.change_key, self._last_change.get(row.change_key))
                    if last == row.change_value:
                        continue
                    changes[row.change_key] = row.change_value
                rows.append(row)
        return rows, changes

    @staticmethod
    def _insert(connection: Connection, rows: list[Row]) -> None:
        by_table: dict[Table, list[dict[str, Any]]] = defaultdict(list)
        for row in rows:
            by_table[row.table].append(row.values)
        for table, values in by_table.items():
            connection.execute(insert_ignoring_duplicates(table, connection.dialect.name), values)

    @staticmethod
    def _record_receipts(connection: Connection, parsed: list[Parsed]) -> None:
        """Remember the packet id of each message that gave rows (the last one, if a batch has two)."""
        latest = {message.packet_id: message.digest for message, rows in parsed if message.packet_id and rows}
        if not latest:
            return
        table = models.IngestReceipt.__table__
        insert = postgresql.insert if connection.dialect.name == "postgresql" else sqlite.insert
        statement = insert(table)
        statement = statement.on_conflict_do_update(
            index_elements=[table.c.packet_id], set_={"digest": statement.excluded.digest}
        )
        connection.execute(statement, [{"packet_id": key, "digest": value} for key, value in latest.items()])

    def _load_last_changes(self) -> None:
        """Seed change detection from what is stored, so a restart does not store a repeat."""
        safety = models.SafetyVerdictRecord
        availability = models.AvailabilityChange
        try:
            with self.engine.connect() as connection:
                for router in self.routers:
                    last = connection.execute(
                        select(safety.safe, safety.reasons)
                        .where(safety.site == router.site)
                        .order_by(desc(safety.time))
                        .limit(1)
                    ).first()
                    if last is not None:
                        self._last_change[(router.site, "safety")] = (last.safe, json.dumps(last.reasons))
                newest = select(func.max(availability.id)).group_by(availability.site, availability.service)
                latest = select(availability.site, availability.service, availability.availability).where(
                    availability.id.in_(newest)
                )
                for site, service, value in connection.execute(latest):
                    self._last_change[(site, "availability", service)] = value
        except TRANSIENT_ERRORS as exc:
            log.warning("cannot read the last stored states yet (%s); repeats may be stored once", _short(exc))


def _short(exc: Exception) -> str:
    text = str(getattr(exc, "orig", None) or exc).strip().splitlines()
    return text[0] if text else type(exc).__name__
