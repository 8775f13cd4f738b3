"""The MQTT bus every service uses (paho-mqtt 2.x).

What it guarantees, so services need not:

- A Last Will sets ``<prefix>/<service>/availability`` to ``offline`` (QoS 1, retained)
  if the process dies or the network drops; :meth:`Bus.set_online` is called by the
  runner only after the service's initial state is out; :meth:`Bus.stop` publishes
  ``stopped`` on a clean exit.
- Reconnects on its own with exponential backoff; on every (re)connect it subscribes
  again, republishes the latest retained message of each topic it owns (a broker
  restarted without persistence has forgotten them) and calls the ``on_connect`` hooks
  (Home Assistant discovery uses one).
- QoS 1 messages published while disconnected are queued (bounded) and sent on reconnect.
- Incoming payloads are bounded: one larger than its topic kind's limit
  (``broker.max_payload``: commands, events, states, the allsky image) is dropped on
  arrival, before it is queued or decoded, and counted in :attr:`Bus.oversize_messages`.
- Incoming payloads are validated against the subscriber's pydantic model. A payload
  that is not valid is logged with its topic and a short escaped excerpt (at most ten lines
  per topic a minute, then a summary), counted in :attr:`Bus.invalid_messages` (oversize
  ones too) and dropped: it never reaches the handler and never raises into the network loop.
- Handlers run on one dispatch thread, in arrival order, so a slow handler never
  stalls keep-alives; an exception in a handler is logged and counted.
- QoS 1 messages are acknowledged on receipt, except on a bus made with
  ``manual_ack=True``: there a :meth:`Bus.subscribe_with_ack` handler receives a
  :class:`Delivery` and acknowledges it when the message is safe (the web ingestor: after
  its database commit), so that the broker sends it again after a crash. Every other
  message of such a bus is acknowledged once its handlers have run.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import queue
import socket
import ssl
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import paho.mqtt.client as mqtt
from pydantic import BaseModel, ValidationError

from obsy.config import BrokerConfig
from obsy.messages import excerpt, validation_problems
from obsy.topics import OFFLINE, ONLINE, STOPPED, Topics

log = logging.getLogger("obsy.bus")
#: Seconds between two "holding unacknowledged messages" warnings of one bus.
BACKPRESSURE_LOG_INTERVAL_S = 60.0

Handler = Callable[[str, Any], None]
Payload = BaseModel | str | bytes | dict | list | int | float | None

#: At most this many invalid-payload log lines per topic per window; the rest are summarised.
_INVALID_LOG_BURST = 10
_INVALID_LOG_WINDOW_S = 60.0


@dataclass
class Subscription:
    topic_filter: str
    handler: Handler
    model: type[BaseModel] | None
    qos: int
    decode: str  # "model", "json", "text", "bytes" or "delivery"


def encode_payload(payload: Payload) -> bytes:
    """Bytes for the wire: models and JSON-able values as JSON, text as UTF-8."""
    if isinstance(payload, BaseModel):
        return payload.model_dump_json().encode("utf-8")
    if isinstance(payload, bytes):
        return payload
    if isinstance(payload, str):
        return payload.encode("utf-8")
    if payload is None:
        return b""
    return json.dumps(payload, separators=(",", ":"), allow_nan=False).encode("utf-8")


def _no_delay(client: mqtt.Client, userdata: Any, sock: Any) -> None:
    """Send small messages at once: Nagle's algorithm can hold a safety verdict for 40 ms."""
    with contextlib.suppress(OSError, AttributeError):
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


class InvalidPayloadError(ValueError):
    """A payload that does not match what the subscriber expects."""


@dataclass(eq=False)
class Delivery:
    """A message received by a ``manual_ack`` bus, not yet acknowledged to the broker.

    Until :meth:`ack` is called the broker keeps the message for the (persistent) session
    and sends it again after a reconnect, with the same ``packet_id`` and ``resent`` (the
    DUP flag) set. ``packet_id`` is 0 for a QoS 0 message, which the broker never resends.
    """

    topic: str
    payload: bytes
    packet_id: int
    qos: int
    resent: bool
    connection: int  # the Bus.connect_count it arrived under
    bus: Bus = field(repr=False)
    acknowledged: bool = False

    def ack(self) -> None:
        """Tell the broker the message is safe; only the first call counts."""
        self.bus._acknowledge(self)


def broker_client(
    broker: BrokerConfig, client_id: str, *, clean_session: bool = True, manual_ack: bool = False
) -> mqtt.Client:
    """A paho client for ``broker``: MQTT 3.1.1, its credentials and TLS set, not connected yet."""
    client = mqtt.Client(
        callback_api_version=mqtt.CallbackAPIVersion.VERSION2,
        client_id=client_id,
        clean_session=clean_session,
        protocol=mqtt.MQTTv311,
        reconnect_on_failure=True,
        manual_ack=manual_ack,
    )
    if broker.username:
        password = broker.password.get_secret_value() if broker.password else None
        client.username_pw_set(broker.username, password)
    if broker.tls.enabled:
        client.tls_set(
            ca_certs=str(broker.tls.ca_certs) if broker.tls.ca_certs else None,
            certfile=str(broker.tls.certfile) if broker.tls.certfile else None,
            keyfile=str(broker.tls.keyfile) if broker.tls.keyfile else None,
            cert_reqs=ssl.CERT_REQUIRED,
        )
        client.tls_insecure_set(broker.tls.insecure)
    return client


class Bus:
    """One service's connection to the broker."""

    def __init__(
        self,
        broker: BrokerConfig,
        service: str,
        *,
        client_id: str | None = None,
        clean_session: bool = True,
        max_queued_messages: int = 10_000,
        manual_ack: bool = False,
        max_unacknowledged: int = 1_000,
    ) -> None:
        self.broker = broker
        self.service = service
        self.topics = Topics(broker.prefix)
        self.availability_topic = self.topics.availability(service)
        self.connected = threading.Event()
        #: Set once the broker has acknowledged the subscriptions sent at the last connection: until then
        #: a message published by another client may reach the broker first and pass this one by.
        self.subscribed = threading.Event()
        self._connect_subscribe_mid: int | None = None
        self.invalid_messages = 0
        self.oversize_messages = 0
        self.invalid_by_topic: Counter[str] = Counter()
        self.handler_errors = 0
        self.connect_count = 0
        self._invalid_log_windows: dict[str, tuple[float, int, int]] = {}
        self._invalid_log_lock = threading.Lock()  # the network thread logs oversize, the dispatcher invalid
        self._subscriptions: list[Subscription] = []
        self._retained: dict[str, tuple[bytes, int]] = {}
        self._availability: str | None = None
        self._hooks: list[Callable[[], None]] = []
        self._lock = threading.RLock()
        self._dispatch_queue: queue.Queue[tuple[str, bytes, Delivery | None, threading.Event | None] | None] = (
            queue.Queue()
        )
        self._dispatcher: threading.Thread | None = None
        self._stopping = False
        self.manual_ack = manual_ack
        self.max_unacknowledged = max_unacknowledged
        self._unacknowledged = 0
        self._backpressure_logged_at = -BACKPRESSURE_LOG_INTERVAL_S
        self._acknowledged_or_stopping = threading.Condition()
        self._arriving: Delivery | None = None  # handed from _on_message_manual_ack to _on_message

        cid = client_id or f"obsy-{service}-{socket.gethostname()}-{os.getpid()}"
        self._client = broker_client(broker, cid, clean_session=clean_session, manual_ack=manual_ack)
        self._client.max_queued_messages_set(max_queued_messages)
        self._client.reconnect_delay_set(
            min_delay=max(1, round(broker.reconnect_min_delay)), max_delay=max(1, round(broker.reconnect_max_delay))
        )
        self._client.will_set(self.availability_topic, OFFLINE, qos=1, retain=True)
        self._client.on_connect = self._on_connect
        self._client.on_disconnect = self._on_disconnect
        self._client.on_subscribe = self._on_subscribe
        self._client.on_message = self._on_message_manual_ack if manual_ack else self._on_message
        self._client.on_socket_open = _no_delay

    # --- lifecycle ---------------------------------------------------------------
    def start(self, wait: float | None = None) -> bool:
        """Connect in the background (retrying forever); optionally wait for the first connection."""
        self._stopping = False
        if self._dispatcher is None:
            self._dispatcher = threading.Thread(
                target=self._dispatch_loop, name=f"bus-dispatch-{self.service}", daemon=True
            )
            self._dispatcher.start()
        self._client.connect_async(self.broker.host, self.broker.port, keepalive=self.broker.keepalive)
        self._client.loop_start()
        if wait is not None:
            deadline = time.monotonic() + wait
            connected = self.connected.wait(wait)
            if connected:  # and the subscriptions in place, so that nothing published from now on passes by
                self.subscribed.wait(max(0.0, deadline - time.monotonic()))
            return connected
        return self.connected.is_set()

    def set_online(self) -> None:
        """Announce the service as available; call after its initial state is published."""
        self._set_availability(ONLINE)

    def stop(self, availability: str = STOPPED, timeout: float = 5.0) -> None:
        """Publish the final availability, flush, disconnect cleanly (no Last Will) and stop threads."""
        self._stopping = True
        with self._acknowledged_or_stopping:
            self._acknowledged_or_stopping.notify_all()
        if self.connected.is_set():
            info = self._set_availability(availability)
            try:
                info.wait_for_publish(timeout)
            except (RuntimeError, ValueError):
                log.warning("could not confirm the final availability message before disconnecting")
        self._client.disconnect()
        self._client.loop_stop()
        self.connected.clear()
        self._dispatch_queue.put(None)
        if self._dispatcher is not None:
            self._dispatcher.join(timeout)
            self._dispatcher = None

    def wait_idle(self, timeout: float = 5.0) -> bool:
        """Wait until every message received so far has been handled (for tests and shutdown)."""
        done = threading.Event()
        self._dispatch_queue.put(("", b"", None, done))
        return done.wait(timeout)

    # --- publishing --------------------------------------------------------------
    def publish(self, topic: str, payload: Payload, *, qos: int = 1, retain: bool = False) -> mqtt.MQTTMessageInfo:
        """Publish now, or queue (QoS > 0) until the connection is back.

        Retained messages are also remembered and republished after every reconnect.
        """
        data = encode_payload(payload)
        if retain:
            with self._lock:
                if data:
                    self._retained[topic] = (data, qos)
                else:
                    self._retained.pop(topic, None)
                if not self.connected.is_set():
                    # Not queued: the connect handler publishes the latest retained value of each topic.
                    return mqtt.MQTTMessageInfo(0)
        return self._client.publish(topic, data, qos=qos, retain=retain)

    def publish_event(self, payload: Payload) -> mqtt.MQTTMessageInfo:
        return self.publish(self.topics.events(self.service), payload, qos=1, retain=False)

    def forget_retained(self, topic: str) -> mqtt.MQTTMessageInfo:
        """Clear a retained topic on the broker (an empty retained payload) and stop republishing it."""
        return self.publish(topic, b"", qos=1, retain=True)

    def _set_availability(self, value: str) -> mqtt.MQTTMessageInfo:
        with self._lock:
            self._availability = value
            if not self.connected.is_set():
                return mqtt.MQTTMessageInfo(0)  # the connect handler publishes it after the retained state
        return self._client.publish(self.availability_topic, value, qos=1, retain=True)

    # --- subscribing -------------------------------------------------------------
    def subscribe(
        self,
        topic_filter: str,
        handler: Handler,
        model: type[BaseModel] | None = None,
        *,
        qos: int = 1,
        decode: str | None = None,
    ) -> None:
        """Call ``handler(topic, value)`` for every valid message matching ``topic_filter``.

        ``value`` is an instance of ``model`` when one is given; otherwise it depends on
        ``decode``: ``"json"`` (any JSON value), ``"text"`` (UTF-8 string) or ``"bytes"``.
        """
        mode = "model" if model is not None else (decode or "bytes")
        if mode not in ("model", "json", "text", "bytes"):
            raise ValueError(f"unknown decode mode {decode!r}")
        sub = Subscription(topic_filter, handler, model, qos, mode)
        with self._lock:
            self._subscriptions.append(sub)
        if self.connected.is_set():
            self._client.subscribe(topic_filter, qos=qos)

    def subscribe_with_ack(self, topic_filter: str, handler: Callable[[Delivery], None], *, qos: int = 1) -> None:
        """Call ``handler(delivery)`` for every message matching ``topic_filter``; the handler acknowledges.

        Only on a ``manual_ack`` bus. A message this handler raised on is acknowledged (and
        logged): one that can never be handled must not hold the broker's in-flight window.
        The first ``ack()`` acknowledges the message, so give each message one such handler.
        """
        if not self.manual_ack:
            raise ValueError("subscribe_with_ack needs a Bus made with manual_ack=True")
        with self._lock:
            self._subscriptions.append(Subscription(topic_filter, handler, None, qos, "delivery"))
        if self.connected.is_set():
            self._client.subscribe(topic_filter, qos=qos)

    def on_connect(self, hook: Callable[[], None]) -> None:
        """Run ``hook`` after every (re)connection, once subscriptions and retained state are restored."""
        self._hooks.append(hook)
        if self.connected.is_set():
            self._run_hook(hook)

    # --- paho callbacks (network thread) ------------------------------------------
    def _on_connect(self, client: mqtt.Client, userdata: Any, flags: Any, reason: Any, properties: Any) -> None:
        if reason.is_failure:
            log.error("broker %s:%s refused the connection: %s", self.broker.host, self.broker.port, reason)
            return
        self.connect_count += 1
        log.info(
            "connected to broker %s:%s (connection #%d)",
            self.broker.host,
            self.broker.port,
            self.connect_count,
            extra={"event": "bus_connected", "session_present": bool(getattr(flags, "session_present", False))},
        )
        # Under the lock so that a publish racing with the reconnect is either in the replay or sent after it.
        with self._lock:
            subs = list(self._subscriptions)
            if subs:
                self.subscribed.clear()
                _result, self._connect_subscribe_mid = client.subscribe([(s.topic_filter, s.qos) for s in subs])
            else:
                self.subscribed.set()
            for topic, (data, qos) in self._retained.items():
                client.publish(topic, data, qos=qos, retain=True)
            if self._availability is not None and not self._stopping:
                client.publish(self.availability_topic, self._availability, qos=1, retain=True)
            self.connected.set()
        for hook in list(self._hooks):
            self._run_hook(hook)

    def _on_subscribe(self, client: mqtt.Client, userdata: Any, mid: int, reasons: Any, properties: Any) -> None:
        if mid == self._connect_subscribe_mid:
            self.subscribed.set()

    def _on_disconnect(self, client: mqtt.Client, userdata: Any, flags: Any, reason: Any, properties: Any) -> None:
        self.connected.clear()
        if not self._stopping:
            log.warning(
                "lost the broker %s:%s (%s); reconnecting",
                self.broker.host,
                self.broker.port,
                reason,
                extra={"event": "bus_disconnected"},
            )

    def _on_message(self, client: mqtt.Client, userdata: Any, message: mqtt.MQTTMessage) -> None:
        if self._drop_oversize(message.topic, len(message.payload)):
            return  # on a manual-ack bus, acknowledged at once by _on_message_manual_ack
        self._dispatch_queue.put((message.topic, bytes(message.payload), self._take_arriving(), None))

    def _drop_oversize(self, topic: str, size: int) -> bool:
        """Count and log a payload over its topic kind's limit (``broker.max_payload``); True = drop it."""
        kind = self.topics.payload_kind(topic)
        limit = getattr(self.broker.max_payload, kind)
        if size <= limit:
            return False
        self.oversize_messages += 1
        self.invalid_messages += 1
        self.invalid_by_topic[topic] += 1
        reason = f"{size} bytes is over the {limit}-byte limit for a {kind} (broker.max_payload.{kind})"
        self._log_invalid(topic, reason, None)
        return True

    def _run_hook(self, hook: Callable[[], None]) -> None:
        try:
            hook()
        except Exception:
            log.exception("on_connect hook %r failed", hook)

    # --- manual acknowledgement (manual_ack=True) ------------------------------------
    def _on_message_manual_ack(self, client: mqtt.Client, userdata: Any, message: mqtt.MQTTMessage) -> None:
        """paho's message callback on a ``manual_ack`` bus: hold the message, then the usual path.

        A message the usual path drops before dispatch (it never takes its delivery) is
        acknowledged here at once: unacknowledged, it would hold a slot of the broker's
        in-flight window until the next reconnect, and come back to be dropped again.
        """
        delivery = self._hold(message)
        if delivery is None:
            return  # stopping: neither handed on nor acknowledged, so the broker sends it again
        self._arriving = delivery
        self._on_message(client, userdata, message)
        if self._take_arriving() is not None:
            delivery.ack()

    def _take_arriving(self) -> Delivery | None:
        delivery, self._arriving = self._arriving, None
        return delivery

    def _hold(self, message: mqtt.MQTTMessage) -> Delivery | None:
        """Count a message as held until acknowledged; at ``max_unacknowledged`` stop reading.

        Blocking here stops paho's network thread, so nothing more is read from the socket
        and the broker queues the rest for the session (keep-alives stop too: after 1.5
        keep-alive intervals the broker drops the connection and, after the reconnect,
        sends again what was not acknowledged). The broker's own in-flight window
        (Mosquitto's ``max_inflight_messages``, 20 by default) normally keeps the count far
        lower; this limit guards against a broker configured without one. None when the
        bus stops meanwhile.
        """
        with self._acknowledged_or_stopping:
            held_back = self._unacknowledged >= self.max_unacknowledged and not self._stopping
            if held_back and time.monotonic() - self._backpressure_logged_at >= BACKPRESSURE_LOG_INTERVAL_S:
                # Once a minute at most: under sustained load this holds for every message.
                self._backpressure_logged_at = time.monotonic()
                log.warning(
                    "holding %d unacknowledged messages; not reading more until some are acknowledged",
                    self._unacknowledged,
                    extra={"event": "bus_backpressure"},
                )
            while self._unacknowledged >= self.max_unacknowledged and not self._stopping:
                self._acknowledged_or_stopping.wait(1.0)
            if self._unacknowledged >= self.max_unacknowledged:
                return None
            self._unacknowledged += 1
        return Delivery(
            topic=message.topic,
            payload=bytes(message.payload),
            packet_id=message.mid if message.qos > 0 else 0,
            qos=message.qos,
            resent=bool(message.dup),
            connection=self.connect_count,
            bus=self,
        )

    def _acknowledge(self, delivery: Delivery) -> None:
        with self._acknowledged_or_stopping:
            if delivery.acknowledged:
                return
            delivery.acknowledged = True
            self._unacknowledged -= 1
            self._acknowledged_or_stopping.notify_all()
        # A message from an earlier connection is not acknowledged: the broker has sent it
        # again on this one (same packet id), and that copy is acknowledged when handled.
        if delivery.packet_id and delivery.connection == self.connect_count:
            self._client.ack(delivery.packet_id, delivery.qos)

    @property
    def unacknowledged(self) -> int:
        """Messages received and not yet acknowledged (always 0 without ``manual_ack``)."""
        return self._unacknowledged

    # --- dispatch thread ------------------------------------------------------------
    def _dispatch_loop(self) -> None:
        while True:
            item = self._dispatch_queue.get()
            if item is None:
                return
            topic, payload, delivery, marker = item
            if marker is not None:
                marker.set()
                continue
            with self._lock:
                subs = [s for s in self._subscriptions if mqtt.topic_matches_sub(s.topic_filter, topic)]
            taken = False
            for sub in subs:
                taken |= self._deliver(sub, topic, payload, delivery)
            if delivery is not None and not taken:
                delivery.ack()

    def _deliver(self, sub: Subscription, topic: str, payload: bytes, delivery: Delivery | None = None) -> bool:
        """Run one handler; True when a ``subscribe_with_ack`` handler took the delivery (and its ack)."""
        if sub.decode == "delivery":
            if delivery is None:
                return False
            try:
                sub.handler(delivery)  # type: ignore[call-arg]
                return True
            except Exception:
                self.handler_errors += 1
                log.exception("handler for %s failed", topic, extra={"event": "handler_error", "topic": topic})
                return False
        try:
            value = self._decode(sub, payload)
        except InvalidPayloadError as exc:
            self.invalid_messages += 1
            self.invalid_by_topic[topic] += 1
            self._log_invalid(topic, str(exc), payload)
            return False
        try:
            sub.handler(topic, value)
        except Exception:
            self.handler_errors += 1
            log.exception("handler for %s failed", topic, extra={"event": "handler_error", "topic": topic})
        return False

    def _log_invalid(self, topic: str, reason: str, payload: bytes | None) -> None:
        """Log a dropped payload (with an excerpt when given), but not thousands a minute when a publisher floods."""
        with self._invalid_log_lock:
            self._log_invalid_limited(topic, reason, payload)

    def _log_invalid_limited(self, topic: str, reason: str, payload: bytes | None) -> None:
        now = time.monotonic()
        start, logged, suppressed = self._invalid_log_windows.get(topic, (now, 0, 0))
        if now - start > _INVALID_LOG_WINDOW_S:
            if suppressed:
                log.warning(
                    "dropped %d more invalid payloads on %s without logging each",
                    suppressed,
                    topic,
                    extra={"event": "invalid_payload_suppressed", "topic": topic, "count": suppressed},
                )
            start, logged, suppressed = now, 0, 0
        if logged < _INVALID_LOG_BURST:
            log.warning(
                "dropped invalid payload on %s: %s%s",
                topic,
                reason,
                "" if payload is None else f" [payload: {excerpt(payload)}]",
                extra={"event": "invalid_payload", "topic": topic},
            )
            logged += 1
        else:
            suppressed += 1
        self._invalid_log_windows[topic] = (start, logged, suppressed)

    @staticmethod
    def _decode(sub: Subscription, payload: bytes) -> Any:
        if sub.decode == "bytes":
            return payload
        try:
            text = payload.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise InvalidPayloadError(f"not UTF-8 text ({exc.reason} at byte {exc.start})") from None
        if sub.decode == "text":
            return text
        if sub.decode == "json":
            try:
                return json.loads(text)
            except (json.JSONDecodeError, RecursionError) as exc:
                raise InvalidPayloadError(f"not JSON: {exc}") from None
        assert sub.model is not None
        try:
            return sub.model.model_validate_json(text)
        except ValidationError as exc:
            raise InvalidPayloadError(f"does not match {sub.model.__name__}: {validation_problems(exc)}") from None
        except (ValueError, RecursionError) as exc:
            raise InvalidPayloadError(f"does not match {sub.model.__name__}: {exc}") from None
