"""The ingestor's own connection to the broker: fixed client id, persistent session, manual acks.

With ``clean_session=False`` and a fixed client id the broker keeps the subscription to
the whole tree and queues QoS 1 messages while the web service is down; they arrive when
it connects again. Messages are acknowledged only once they are committed to the
database (``manual_ack``), so a message held in memory when the process dies is sent
again by the broker; the broker's in-flight window bounds how many are held. This
connection has its own availability topic, ``<prefix>/web/ingestor/availability``, so
that its Last Will never speaks for the web service as a whole.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from obsy.bus import Bus, Delivery
from obsy.config import BrokerConfig

INGESTOR_NAME = "web/ingestor"


def ingest_client_id(broker: BrokerConfig) -> str:
    return f"obsy-web-ingestor-{broker.prefix.replace('/', '-')}"


def start_ingest_bus(
    broker: BrokerConfig, handler: Callable[[Delivery], None], wait: float = 5.0, also: Sequence[str] = ()
) -> Bus:
    """Connect, subscribe ``handler`` to every topic under the prefix (QoS 1) and announce online.

    ``also``: more topic filters, the other sites' trees and their bridges' link states
    (:meth:`Fleet.topic_filters`). ``handler`` must acknowledge each delivery once it is
    stored (:meth:`Ingestor.submit_delivery` does).
    """
    bus = Bus(broker, INGESTOR_NAME, client_id=ingest_client_id(broker), clean_session=False, manual_ack=True)
    bus.subscribe_with_ack(bus.topics.everything(), handler, qos=1)
    for topic_filter in also:
        bus.subscribe_with_ack(topic_filter, handler, qos=1)
    bus.start(wait=wait)
    bus.set_online()
    return bus
