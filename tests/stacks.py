"""The committed stacks as the whole program declares them, evaluated once per test run.

Evaluating a stack's program under the offline mocks takes a few seconds of CPU; the infra, plan,
gitops and delivery tests all read the same four declarations, so they share this cache instead
of each module keeping its own. Callers treat the result as read-only.

Under pytest-xdist every worker is its own process, and most workers get a test file that
needs every stack, so each worker would evaluate all four. Instead the first
worker to need a stack evaluates it and leaves a pickle in a folder of this run (named by
xdist's test run id); the others wait on its lock and load it. The folder is removed when the
run ends: tests/conftest.py fixes the run id in the controller (`fix_run_id`) and removes the
folder after the run (`remove_shared_stacks`).
"""

from __future__ import annotations

import contextlib
import fcntl
import functools
import os
import pickle
import shutil
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from platform_cli.offline import Declared


@functools.cache
def committed_stack(env: str) -> Declared:
    """What `stacks/<env>` declares: the program run once per test run for that env."""
    shared = _shared_folder()
    if shared is None:
        return _evaluate(env)
    shared.mkdir(parents=True, exist_ok=True)
    pickled = shared / f"{env}.pickle"
    with _exclusive(shared / f"{env}.lock"):
        if pickled.exists():
            declared: Declared = pickle.loads(pickled.read_bytes())
            return declared
        declared = _evaluate(env)
        partial = pickled.with_suffix(".partial")
        partial.write_bytes(pickle.dumps(declared))
        partial.replace(pickled)
        return declared


def fix_run_id(config: pytest.Config) -> None:
    """In xdist's controller: choose the run id the workers will get, so it can clean up."""
    if getattr(config.option, "numprocesses", None) and not config.option.testrunuid:
        config.option.testrunuid = uuid.uuid4().hex


def remove_shared_stacks(config: pytest.Config) -> None:
    """In xdist's controller, after the run: remove the run's shared evaluations."""
    run_id = getattr(config.option, "testrunuid", None)
    if run_id and not hasattr(config, "workerinput"):
        shutil.rmtree(_folder_of(run_id), ignore_errors=True)


def _evaluate(env: str) -> Declared:
    # Imported here: tests/conftest.py imports this module, and the Pulumi SDK behind these
    # would otherwise load in pytest's controller process too, which never evaluates a stack.
    from infra.config import load_stack_file
    from platform_cli.offline import run_stack

    return run_stack(load_stack_file(env))


def _shared_folder() -> Path | None:
    run_id = os.environ.get("PYTEST_XDIST_TESTRUNUID")  # set in xdist's workers
    if not run_id:
        return None  # one process: functools.cache is all the sharing there is
    return _folder_of(run_id)


def _folder_of(run_id: str) -> Path:
    return Path(tempfile.gettempdir()) / f"platform-stacks-{run_id}"


@contextlib.contextmanager
def _exclusive(lock_file: Path) -> Iterator[None]:
    # fcntl.flock rather than the filelock package: one advisory lock between processes of one
    # machine is all this needs, and the lock goes with the process if a worker dies.
    with lock_file.open("w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
