"""The committed stacks as the whole program declares them, evaluated once per test process.

Evaluating a stack's program under the offline mocks takes one to two seconds; the infra, plan,
gitops and delivery tests all read the same four declarations, so they share this cache instead
of each module keeping its own. Callers treat the result as read-only.
"""

from __future__ import annotations

import functools

from infra.config import load_stack_file
from platform_cli.offline import Declared, run_stack


@functools.cache
def committed_stack(env: str) -> Declared:
    """What `stacks/<env>` declares: the program run once per process for that env."""
    return run_stack(load_stack_file(env))
