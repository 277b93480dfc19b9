"""The hard stop (tests/hard_stop.py) ends a run that pytest-timeout's signal cannot end.

A real pytest run in a subprocess, with the plugin and a 1 s pytest-timeout, of a test that
swallows pytest-timeout's failure (as a cleanup that joins a stuck thread does, in effect): the
run must end by itself within seconds, non-zero, with the stuck test's frame in the stack dump.
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.hard_stop import HARD_STOP_FACTOR

REPO = Path(__file__).resolve().parents[1]
STUCK_TEST = """
import time

def test_stuck_past_its_timeout():
    while True:
        try:
            time.sleep(30)
        except BaseException:  # pytest-timeout's failure, swallowed
            pass
"""


@pytest.mark.slow
def test_a_test_that_survives_its_timeout_ends_the_run_with_stacks(tmp_path: Path) -> None:
    (tmp_path / "test_stuck.py").write_text(STUCK_TEST)
    started = time.monotonic()
    run = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-p",
            "tests.hard_stop",
            "-o",
            "timeout=1",
            "-p",
            "no:cacheprovider",
            "-p",
            "no:schemathesis",
            str(tmp_path / "test_stuck.py"),
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
    )
    took_s = time.monotonic() - started
    assert run.returncode != 0
    assert "test_stuck_past_its_timeout" in run.stderr, run.stderr
    assert "Timeout" in run.stderr  # faulthandler's "Timeout (0:00:02)!" header
    assert took_s < 30, f"the run took {took_s:.1f} s; the hard stop is {HARD_STOP_FACTOR} s"
