"""Close a kafka-python producer WITHOUT flushing it: for a producer given up after an outage.

Why not `producer.close(timeout=0)`: in kafka-python (3.0.12, kafka/producer/kafka.py) `close`
always calls `flush(timeout)` first, and `flush(0)` raises `KafkaTimeoutError` while records are
unacknowledged, which is exactly the state after an outage. The exception leaves `close` before
it stops the sender, so every outage leaked one sender thread (with its sockets and buffers),
and the producer's `__del__` later retried the close and printed an "Exception ignored"
traceback outside the JSON log.

What this does instead is what `close` itself does once a flush has timed out: force-close the
sender (`Sender.force_close()`: it aborts the incomplete batches, failing their futures, and
exits its loop), join its thread, and only then call `close(timeout=0)`, whose flush now finds
nothing pending and which marks the producer closed (so `__del__` does nothing). The sender is
reached through the producer's `_sender` attribute, the one private name used here; if a future
kafka-python renames it, `close(timeout=0)` is still attempted and the failure logged.

Nothing is lost by discarding the records: the relay only marks outbox rows sent after their
acks, so the rows of a discarded producer are published again by the next one.
"""

from __future__ import annotations

import logging
from typing import Any

from kafka import KafkaProducer

log = logging.getLogger(__name__)

SENDER_JOIN_S = 2.0
"""How long to wait for the sender thread to exit after the force-close (it exits at its next
loop turn; a socket write blocked on a frozen broker returns on the sender's own timeouts)."""


def close_without_flush(producer: KafkaProducer, join_s: float = SENDER_JOIN_S) -> bool:
    """Stop the producer's sender thread and close it, dropping unsent records; never raises.

    Returns True when the sender thread has exited."""
    sender: Any = getattr(producer, "_sender", None)
    try:
        if sender is not None:
            sender.force_close()
            sender.join(join_s)
        producer.close(timeout=0)
    except Exception as exc:  # the producer is being discarded: report, never propagate
        log.warning(
            "kafka producer did not close cleanly",
            extra={"error": f"{type(exc).__name__}: {exc}"[:300]},
        )
    return sender is None or not sender.is_alive()
