"""Pacing for the loops that run one cycle after another until stopped (the outbox relay, the
reminders scheduler): what a cycle did, a capped doubling pause after a failed cycle, and a
periodic side task.

Hand-written rather than tenacity: tenacity retries one call until it succeeds or gives up,
while these loops never give up, carry on with new work after a failure, and reset the pause
on the first cycle that succeeds; what is shared is a few lines of arithmetic and a log line.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class CycleResult:
    """One claim-publish-mark cycle: rows claimed, published (acked and marked), failed (left
    for a later cycle), and the error that stopped or failed the cycle, if any."""

    claimed: int
    published: int
    failed: int
    error: str | None = None


class Backoff:
    """Pause after a failed cycle: `first_s`, doubling per consecutive failure, up to `max_s`."""

    def __init__(self, first_s: float, max_s: float, log: logging.Logger) -> None:
        self._first_s = first_s
        self._max_s = max_s
        self._log = log
        self.current_s = 0.0

    def wait_after_failure(self, stop: threading.Event, message: str, error: str) -> None:
        """Log `message` with the error and the pause, then wait it out (or until `stop`)."""
        self.current_s = min(self._max_s, max(self._first_s, self.current_s * 2))
        self._log.warning(message, extra={"error": error, "retry_in_s": self.current_s})
        stop.wait(self.current_s)

    def reset(self) -> None:
        """A cycle succeeded: the next failure pauses `first_s` again."""
        self.current_s = 0.0


class Periodic:
    """Run a best-effort `action` (e.g. refreshing gauges) at most every `period_s`; the first
    `maybe_run` always runs it, and a failure of it is ignored until the next period."""

    def __init__(self, period_s: float, action: Callable[[], object]) -> None:
        self._period_s = period_s
        self._action = action
        self._last = 0.0

    def maybe_run(self) -> None:
        if time.monotonic() - self._last > self._period_s:
            with contextlib.suppress(Exception):
                self._action()
            self._last = time.monotonic()
