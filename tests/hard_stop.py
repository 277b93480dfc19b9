"""A hard per-test limit behind pytest-timeout's (a pytest plugin; tests/conftest.py loads it).

pytest-timeout's signal method fails a test by raising in its main thread. A test whose cleanup
then waits for threads that never finish (a ThreadPoolExecutor's exit joins its workers, a
server's shutdown joins its handlers) hangs anyway: CI once sat 80 minutes on one such test
until the job's own limit killed it, with nothing in the log to say where. At `HARD_STOP_FACTOR`
times pytest-timeout's limit this plugin prints every thread's stack and exits the process, so
the run fails in minutes with the cause in the log (tests/test_hard_stop.py runs it).
"""

from __future__ import annotations

import contextlib
import faulthandler
import os
import sys
from collections.abc import Iterator

import pytest

HARD_STOP_FACTOR = 2
_stderr = pytest.StashKey[int]()


def hard_stop_s(config: pytest.Config) -> float:
    """Seconds a test may run before the process is ended; 0 when pytest-timeout is off."""
    try:
        return float(config.getini("timeout") or 0) * HARD_STOP_FACTOR
    except ValueError:  # pytest-timeout not loaded (`-p no:timeout`): no ini key
        return 0.0


def pytest_configure(config: pytest.Config) -> None:
    # pytest's capture holds fd 2 during a test; the stacks must reach the real stderr (the CI
    # log). Global capture is suspended while plugins configure, so fd 2 is the real one here.
    config.stash[_stderr] = os.dup(sys.stderr.fileno())


def pytest_unconfigure(config: pytest.Config) -> None:
    with contextlib.suppress(KeyError, OSError):
        os.close(config.stash[_stderr])


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_protocol(item: pytest.Item) -> Iterator[None]:
    limit_s = hard_stop_s(item.config)
    if limit_s > 0:
        faulthandler.dump_traceback_later(limit_s, exit=True, file=item.config.stash[_stderr])
    try:
        yield
    finally:
        if limit_s > 0:
            faulthandler.cancel_dump_traceback_later()
