"""Batch writer from the bus to the database that survives database restarts.

The bus's dispatch thread only hands messages over (:meth:`Ingestor.submit`); a writer
thread takes up to ``batch_size`` of them at a time, turns them into rows and writes
them in one transaction with ``INSERT ... ON CONFLICT DO NOTHING`` (a retained state the
broker sends again after a reconnect, or a QoS 1 duplicate, is stored once).

When the database is unreachable (restart, network) the batch is kept and retried with
a growing delay until it is written; messages keep queueing in memory meanwhile (bounded:
when the queue is full the bus stops dispatching, and the broker keeps the rest for the
persistent session). A row the database refuses (a value out of range, text it cannot
store) is dropped alone, logged with its table and the reason; the rest of the batch is
stored. So is a message on a stored topic larger than ``web.ingest_max_payload``: counted in
``oversize`` and logged with its topic and size, never parsed, never written.
"""

from __future__ import annotations

import json
import logging
import queue
import threading
import time
from collections import defaultdict
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Engine, Table, desc, func, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError

from obsy.topics import Topics
from obsy_web.db import models
from obsy_web.ingest.records import Incoming, InvalidMessageError, OversizeMessageError, Router, Row

log = logging.getLogger("obsy.web.ingest")

#: Errors that mean "the database is not there right now": keep the batch and retry.
TRANSIENT_ERRORS = (OperationalError, InterfaceError)
_MAX_RETRY_DELAY_S = 5.0
_INVALID_LOG_LIMIT = 20


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
        max_payload: int = 1024 * 1024,
        batch_size: int = 500,
        max_queued: int = 200_000,
        flush_interval: float = 0.2,
        gather_s: float = 0.05,
    ) -> None:
        self.engine = engine
        self.router = Router(topics, max_payload)
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
        self.database_ok = True
        self.last_error: str | None = None

    # --- called from the bus ---------------------------------------------------------
    def submit(self, topic: str, payload: bytes) -> None:
        """Queue one message for storage (blocks only when the bounded queue is full)."""
        self.received += 1  # only the bus's dispatch thread submits: no lock needed
        self._queue.put(Incoming(topic, payload, datetime.now(UTC)))

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
            "last_error": self.last_error,
        }

    # --- writer thread ---------------------------------------------------------------
    def _run(self) -> None:
        while not self._stop.is_set():
            batch = self._take_batch()
            if not batch:
                continue
            rows = self._rows(batch)
            self._write_until_stored(rows)
            self.stored_messages += len(batch)
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

    def _rows(self, batch: Iterable[Incoming]) -> list[Row]:
        rows: list[Row] = []
        for message in batch:
            try:
                found = self.router.rows_for(message)
            except InvalidMessageError as exc:
                self.oversize += isinstance(exc, OversizeMessageError)
                self.invalid += 1
                if self.invalid <= _INVALID_LOG_LIMIT or self.invalid % 1000 == 0:
                    log.warning("not stored: %s (%d invalid so far)", exc, self.invalid)
                continue
            for row in found:
                if row.change_key is not None:
                    if self._last_change.get(row.change_key) == row.change_value:
                        continue
                    self._last_change[row.change_key] = row.change_value
                rows.append(row)
        return rows

    def _write_until_stored(self, rows: list[Row]) -> None:
        delay = 0.2
        while True:
            try:
                self._write(rows)
            except TRANSIENT_ERRORS as exc:
                self._note_outage(exc)
            except DBAPIError as exc:
                log.warning("a batch was refused (%s); storing its rows one by one", _short(exc))
                self._write_one_by_one(rows)
                return
            else:
                if not self.database_ok:
                    log.info("database is back; stored the %d rows that waited", len(rows))
                self.database_ok = True
                return
            if self._stop.is_set() and self._queue.empty():
                log.error("stopping while the database is unreachable: %d rows not stored", len(rows))
                return
            time.sleep(delay)
            delay = min(delay * 2, _MAX_RETRY_DELAY_S)

    def _note_outage(self, exc: Exception) -> None:
        self.retries += 1
        self.last_error = _short(exc)
        if self.database_ok:
            log.warning("database unreachable (%s); holding messages and retrying", self.last_error)
        self.database_ok = False

    def _write(self, rows: list[Row]) -> None:
        by_table: dict[Table, list[dict[str, Any]]] = defaultdict(list)
        for row in rows:
            by_table[row.table].append(row.values)
        if not by_table:
            return
        with self.engine.begin() as connection:
            dialect = connection.dialect.name
            for table, values in by_table.items():
                connection.execute(insert_ignoring_duplicates(table, dialect), values)

    def _write_one_by_one(self, rows: list[Row]) -> None:
        for row in rows:
            while True:
                try:
                    self._write([row])
                    break
                except TRANSIENT_ERRORS as exc:
                    self._note_outage(exc)
                    time.sleep(1.0)
                except DBAPIError as exc:
                    self.rejected_rows += 1
                    log.error("dropped a row for %s that the database refused: %s", row.table.name, _short(exc))
                    break

    def _load_last_changes(self) -> None:
        """Seed change detection from what is stored, so a restart does not store a repeat."""
        safety = models.SafetyVerdictRecord
        availability = models.AvailabilityChange
        try:
            with self.engine.connect() as connection:
                last = connection.execute(
                    select(safety.safe, safety.reasons).order_by(desc(safety.time)).limit(1)
                ).first()
                if last is not None:
                    self._last_change[("safety",)] = (last.safe, json.dumps(last.reasons))
                newest = select(func.max(availability.id)).group_by(availability.service)
                latest = select(availability.service, availability.availability).where(availability.id.in_(newest))
                for service, value in connection.execute(latest):
                    self._last_change[("availability", service)] = value
        except TRANSIENT_ERRORS as exc:
            log.warning("cannot read the last stored states yet (%s); repeats may be stored once", _short(exc))


def _short(exc: Exception) -> str:
    text = str(getattr(exc, "orig", None) or exc).strip().splitlines()
    return text[0] if text else type(exc).__name__
