"""The retry scheduler: a thread beside the consumer loop that sends due retries.

It takes due rows of notifier_retry_schedule under a lease (`DeliveryStore.take_due`, FOR UPDATE
SKIP LOCKED, so every replica runs one and no two send the same retry), sends them with its own
`Deliverer` (its own threads: a slow target's retries never occupy the consumer's), and records
the outcomes in the same way. Between rounds it sleeps until the earliest retry is due, at most
`idle_s`, or until woken (the consumer scheduled something due now).

Why hand-written and not a job library: the schedule IS the delivery table's state, claimed in
the same statements as the consumer's claims; a queue library would be a second copy of it.
"""

from __future__ import annotations

import logging
import threading

import psycopg

from apps.common.background import BackgroundLoop
from apps.common.consumer_loop import HandBack
from apps.notifier.delivery import Deliverer
from apps.notifier.store import DeliveryStore

log = logging.getLogger(__name__)

DB_RETRY_MAX_S = 5.0


class RetryScheduler(BackgroundLoop):
    def __init__(
        self,
        store: DeliveryStore,
        deliverer: Deliverer,
        stop: threading.Event,
        *,
        batch: int = 100,
        idle_s: float = 1.0,
    ) -> None:
        super().__init__("notifier-retries")
        self._store = store
        self._deliverer = deliverer
        self._stop = stop
        self._batch = batch
        self._idle_s = idle_s
        self._wake = threading.Event()
        self._closing = threading.Event()

    def wake(self) -> None:
        """Look for due retries now (e.g. a delivery was just queued behind another)."""
        self._wake.set()

    def close(self, timeout_s: float = 15.0) -> None:
        """Finish the round in progress, then stop."""
        self._closing.set()
        self._wake.set()
        self._join(timeout_s)

    def _run(self) -> None:
        delay = 0.0
        while not (self._stop.is_set() or self._closing.is_set()):
            self._wake.clear()  # before looking: a wake from now on is not lost
            try:
                taken = self._store.take_due(self._batch)
                if taken:
                    self._deliverer.run(taken)
                    delay = 0.0
                    continue  # more may be due (a key's next delivery, once this one resolved)
                wait = self._store.next_due_in()
                delay = 0.0
            except HandBack:
                return
            except psycopg.OperationalError as exc:
                delay = min(DB_RETRY_MAX_S, max(0.5, delay * 2))
                log.warning(
                    "database unavailable, retrying",
                    extra={"error": type(exc).__name__, "component": "retry scheduler"},
                )
                wait = delay
            except Exception:
                # Never die silently: a scheduler that stopped would leave retries waiting.
                log.exception("retry round failed; trying again")
                wait = delay = min(DB_RETRY_MAX_S, max(0.5, delay * 2))
            timeout = self._idle_s if wait is None else min(self._idle_s, wait)
            if timeout > 0:
                self._wake.wait(timeout)
