#!/usr/bin/env python3
"""Which Pulumi stacks a change can affect, from the list of changed files.

`affected_stacks()` is a pure function (tested in tests/delivery/test_affected_stacks.py); run as a
script it reads changed paths from stdin (one per line, as `git diff --name-only` prints them) and
prints the stacks, one per line, in the order of `infra.contracts.ENVIRONMENTS`; with `--all` it
prints every stack.

The rules, most specific first:
- `stacks/Pulumi.<env>.yaml`: that stack only.
- the program and everything it imports or runs with (`infra/` except the GitOps renderer and its
  rendered output, `Pulumi.yaml`, `pyproject.toml`): every stack.
- the GitOps renderer (`infra/gitops/`), `gitops/`, the apps, tests, docs, the pipeline itself:
  no stack. They reach the clusters through ArgoCD, not through `pulumi up`.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Iterable
from pathlib import PurePosixPath

ENVIRONMENTS: tuple[str, ...] = ("localstack", "dev", "staging", "prod")
"""Mirrors infra.contracts.ENVIRONMENTS (kept import-free so the script runs before the venv)."""

_STACK_FILE = re.compile(r"^stacks/Pulumi\.([a-z0-9-]+)\.ya?ml$")
_EVERY_STACK_FILES = frozenset({"Pulumi.yaml", "pyproject.toml"})
_NO_STACK_PREFIXES = ("infra/gitops/",)


def affected_stacks(changed: Iterable[str]) -> list[str]:
    """The stacks a change to `changed` (repository-relative paths) can alter, in stack order."""
    hit: set[str] = set()
    for raw in changed:
        path = PurePosixPath(raw.strip().removeprefix("./")).as_posix()
        if path in ("", "."):
            continue
        stack_file = _STACK_FILE.match(path)
        if stack_file:
            if stack_file.group(1) in ENVIRONMENTS:
                hit.add(stack_file.group(1))
            continue
        if path.startswith(_NO_STACK_PREFIXES):
            continue
        if path in _EVERY_STACK_FILES or path.startswith("infra/"):
            return list(ENVIRONMENTS)
    return [env for env in ENVIRONMENTS if env in hit]


def main(argv: list[str]) -> int:
    stacks = ENVIRONMENTS if argv == ["--all"] else affected_stacks(sys.stdin.read().splitlines())
    for stack in stacks:
        sys.stdout.write(f"{stack}\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
