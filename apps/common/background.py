"""A loop on a daemon thread of its own (the notifier's retry scheduler, events-api's
idempotency-key purger): built stopped, `start()` runs the subclass's `_run` once on the thread,
`_join` waits for it after the subclass told it to stop."""

from __future__ import annotations

import threading
from typing import Self


class BackgroundLoop:
    def __init__(self, thread_name: str) -> None:
        self._thread = threading.Thread(target=self._run, name=thread_name, daemon=True)

    def start(self) -> Self:
        self._thread.start()
        return self

    def alive(self) -> bool:
        return self._thread.is_alive()

    def _join(self, timeout_s: float) -> None:
        """Wait up to `timeout_s` for `_run` to return (nothing to wait for if never started)."""
        if self._thread.is_alive():
            self._thread.join(timeout_s)

    def _run(self) -> None:
        raise NotImplementedError
