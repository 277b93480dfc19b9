"""`platform plan` end to end, in-process through typer's runner (the real program and rules)."""

from __future__ import annotations

import json
import shutil

from typer.testing import CliRunner

from platform_cli.inventory import build_inventory, dumps
from platform_cli.main import app

runner = CliRunner()


def plan(*args: str):
    return runner.invoke(app, ["plan", *args], env={"COLUMNS": "200"})


def test_plan_prints_tree_counts_policy_and_the_declared_caveat(tmp_path) -> None:
    result = plan("--stack", "prod", "--json", str(tmp_path / "prod.json"))
    assert result.exit_code == 0, result.output
    assert "DECLARES" in result.output and "not a diff against live cloud state" in result.output
    assert "stack prod (declared)" in result.output
    assert "Declared resources per type" in result.output
    assert "policy: passed" in result.output
    inventory = json.loads((tmp_path / "prod.json").read_text())
    assert inventory["stack"] == "prod"
    assert inventory["resourceCount"] == len(inventory["resources"])
    assert f"{inventory['resourceCount']} declared resources" in result.output


def test_plan_rejects_an_unknown_stack() -> None:
    result = plan("--stack", "qa")
    assert result.exit_code == 2
    assert "allowed: localstack, dev, staging, prod" in result.output


def test_plan_diff_against_an_older_inventory(tmp_path, declared) -> None:
    older = json.loads(dumps(build_inventory(declared("dev"), "dev")))
    dropped = older["resources"].pop()
    changed = next(r for r in older["resources"] if r["custom"] and r["inputs"])
    changed["inputs"]["addedByHand"] = "x"
    (tmp_path / "old.json").write_text(json.dumps(older))

    result = plan("--stack", "dev", "--quiet", "--diff", str(tmp_path / "old.json"))
    assert result.exit_code == 0, result.output
    assert "1 added, 0 removed, 1 changed" in result.output
    assert f"+ {dropped['urn']}" in result.output
    assert f"~ {changed['urn']}" in result.output
    assert 'inputs.addedByHand: "x" -> <absent>' in result.output


def test_plan_diff_with_itself_is_empty(tmp_path) -> None:
    assert (
        plan("--stack", "localstack", "--quiet", "--json", str(tmp_path / "a.json")).exit_code == 0
    )
    result = plan("--stack", "localstack", "--quiet", "--diff", str(tmp_path / "a.json"))
    assert "diff: no change" in result.output


def test_plan_graph_writes_dot(tmp_path) -> None:
    result = plan("--stack", "localstack", "--quiet", "--graph", str(tmp_path / "g.dot"))
    assert result.exit_code == 0, result.output
    assert (tmp_path / "g.dot").read_text().startswith("digraph platform {")
    if shutil.which("dot"):
        assert (tmp_path / "g.svg").read_text().lstrip().startswith(("<?xml", "<svg"))
    else:
        assert "SVG skipped" in result.output


def test_graph_without_graphviz_still_succeeds(tmp_path) -> None:
    """With no `dot` on PATH the DOT file is still written and the SVG is skipped, not an error."""
    empty_path = tmp_path / "bin"
    empty_path.mkdir()
    result = runner.invoke(
        app,
        ["plan", "--stack", "dev", "--quiet", "--graph", str(tmp_path / "g.dot")],
        env={"COLUMNS": "200", "PATH": str(empty_path)},
    )
    assert result.exit_code == 0, result.output
    assert "SVG skipped" in result.output
    assert (tmp_path / "g.dot").exists()
    assert not (tmp_path / "g.svg").exists()
