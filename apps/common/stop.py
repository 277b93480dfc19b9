"""The one way a bundled process learns it must stop: SIGTERM (Kubernetes) or SIGINT (Ctrl-C).

The handler only sets an event. Every loop (the consumers, the outbox relay) checks that event
between units of work and waits on it instead of sleeping, so a stop request is honoured at the
next safe point and `finally` blocks still run: nothing is torn down inside a signal handler.
"""

from __future__ import annotations

import logging
import signal
import threading
from types import FrameType

STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)


def stop_on_signals(stop: threading.Event, service: str) -> threading.Event:
    """Make SIGTERM and SIGINT set `stop` (logged once per signal); returns `stop`.

    Call from the main thread (Python delivers signals only there)."""

    def _handler(signum: int, _frame: FrameType | None) -> None:
        logging.getLogger(service).info("stop requested", extra={"signal": signum})
        stop.set()

    for signum in STOP_SIGNALS:
        signal.signal(signum, _handler)
    return stop
