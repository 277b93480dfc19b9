"""Each stack's declared inventory matches its committed snapshot, tests/snapshots/<stack>.json.

On a mismatch the failure prints what changed (added/removed/changed resources and inputs) and the
one command that refreshes the snapshot. Refresh only after reading the diff: the snapshot is the
reviewed record of what each environment declares.
"""

from __future__ import annotations

import difflib
import json
from pathlib import Path

import pytest

from infra.config import REPO_ROOT
from infra.contracts import ENVIRONMENTS
from platform_cli.inventory import build_inventory, diff_inventories, dumps
from platform_cli.plan_cmd import REFRESH_COMMAND

SNAPSHOTS = REPO_ROOT / "tests" / "snapshots"


def mismatch_report(stack: str, committed: str, current: str) -> str:
    refresh = REFRESH_COMMAND.format(stack=stack)
    changes = diff_inventories(json.loads(committed), json.loads(current))
    lines = changes.lines()
    if not lines:  # same content, different text (e.g. formatting): show the text diff
        lines = list(
            difflib.unified_diff(
                committed.splitlines(), current.splitlines(), "snapshot", "current", lineterm=""
            )
        )[:80]
    return (
        f"stack {stack}: declared inventory differs from tests/snapshots/{stack}.json\n"
        + "\n".join(lines)
        + f"\n\nIf the change is intended, refresh it with:\n    {refresh}\n"
        + "(or `make snapshots` for every stack), and commit the snapshot with the change."
    )


@pytest.mark.parametrize("stack", ENVIRONMENTS)
def test_inventory_matches_snapshot(stack: str, declared) -> None:
    path: Path = SNAPSHOTS / f"{stack}.json"
    current = dumps(build_inventory(declared(stack), stack))
    if not path.exists():
        pytest.fail(
            f"no snapshot for {stack}; create it with: {REFRESH_COMMAND.format(stack=stack)}"
        )
    committed = path.read_text(encoding="utf-8")
    if committed != current:
        pytest.fail(mismatch_report(stack, committed, current), pytrace=False)


def test_mismatch_report_names_the_change_and_the_refresh_command(declared) -> None:
    inventory = build_inventory(declared("dev"), "dev")
    edited = json.loads(dumps(inventory))
    edited["resources"][0]["inputs"]["description"] = "edited by hand"
    removed_urn = edited["resources"].pop()["urn"]
    report = mismatch_report("dev", dumps(edited), dumps(inventory))
    assert f"+ {removed_urn}" in report
    assert f"~ {edited['resources'][0]['urn']}" in report
    assert "inputs.description" in report
    assert "platform plan --stack dev --json tests/snapshots/dev.json" in report
