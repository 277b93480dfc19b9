"""Delivery rows written with the notifier's own store (apps/notifier/store.py), for tests of
what events-api reads back from them."""

from __future__ import annotations

from typing import Any

from apps.common.db import make_pool
from apps.common.envelope import decode
from apps.notifier.model import Delivery, SourceRecord
from apps.notifier.store import DeliveryStore, Finished


def record_deliveries(
    conninfo: str, record: Any, sent: dict[str, int], failing: dict[str, str]
) -> None:
    """For the event of Kafka `record`: `sent` channels -> their status code (sent), `failing`
    channels -> the last error of an attempt (still sending)."""
    envelope = decode(record.value)
    source = SourceRecord.of(record)
    pool = make_pool(conninfo, name="notifier-test")
    try:
        store = DeliveryStore(pool, owner="test", lease_s=30)
        deliveries = {c: Delivery(envelope, c, source) for c in (*sent, *failing)}
        store.claim(list(deliveries.values()))
        store.resolve(
            finished=[Finished(deliveries[c], "sent", code) for c, code in sent.items()],
            failed=[
                Finished(deliveries[c], "sending", error=error) for c, error in failing.items()
            ],
        )
    finally:
        pool.close()
