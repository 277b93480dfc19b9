"""Inventories are deterministic, secret-free, and their diff names what changed."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys

import pulumi
import pulumi_aws as aws
import pytest

from infra.config import REPO_ROOT, load_stack_file
from platform_cli.inventory import build_inventory, diff_inventories, dumps, scrub, to_dot
from platform_cli.offline import SECRET_MARKER, run_program, run_stack


def test_two_runs_give_byte_identical_inventories(declared) -> None:
    first = dumps(build_inventory(declared("prod"), "prod"))
    second = dumps(build_inventory(run_stack(load_stack_file("prod")), "prod"))
    assert first == second


@pytest.mark.slow  # a fresh process runs the whole program
def test_inventory_is_identical_from_a_separate_process(tmp_path, declared) -> None:
    """A fresh interpreter (another hash seed) writes the same bytes through the CLI."""
    out = tmp_path / "staging.json"
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "platform_cli.main",
            "plan",
            "--quiet",
            "--stack",
            "staging",
            "--json",
            str(out),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=REPO_ROOT,
        env={**os.environ, "PYTHONHASHSEED": "12345"},
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert out.read_text() == dumps(build_inventory(declared("staging"), "staging"))


def _program_with_secrets() -> None:
    aws.secretsmanager.SecretVersion(
        "marked", secret_id="s", secret_string=pulumi.Output.secret("marked-value-123")
    )
    # Not marked secret by the program: caught by the key name instead.
    aws.rds.Instance("unmarked", instance_class="db.t4g.micro", password="plain-value-456")
    pulumi.export("token", pulumi.Output.secret("exported-value-789"))


def test_secrets_never_reach_the_inventory() -> None:
    declared = run_program(_program_with_secrets, stack="dev", region="eu-west-1")
    text = dumps(build_inventory(declared, "dev"))
    for value in ("marked-value-123", "plain-value-456", "exported-value-789"):
        assert value not in text
    inventory = json.loads(text)
    by_name = {r["name"]: r for r in inventory["resources"]}
    assert by_name["marked"]["inputs"]["secretString"] == SECRET_MARKER
    assert by_name["unmarked"]["inputs"]["password"] == SECRET_MARKER
    assert inventory["outputs"]["token"] == SECRET_MARKER


def test_scrub_keeps_non_secret_lookalikes() -> None:
    inputs = {
        "metadataOptions": {"httpTokens": "required"},
        "masterUserSecretKmsKeyId": "arn:key",
        "secretArn": "arn:secret",
        "manageMasterUserPassword": True,
        "port": 443.0,
        "k8s": {"stringData": {"apiToken": "x"}},
    }
    assert scrub(inputs) == {
        "metadataOptions": {"httpTokens": "required"},
        "masterUserSecretKmsKeyId": "arn:key",
        "secretArn": "arn:secret",
        "manageMasterUserPassword": True,
        "port": 443,
        "k8s": {"stringData": {"apiToken": SECRET_MARKER}},
    }


def test_external_secret_key_names_are_kept_but_values_are_not() -> None:
    external = {"data": [{"secretKey": "DB_USER", "remoteRef": {"key": "arn", "property": "u"}}]}
    assert scrub(external, keep=frozenset({"secretKey"})) == external
    assert scrub(external)["data"][0]["secretKey"] == SECRET_MARKER
    wrapped = {
        "secretKey": {
            "4dabf18193072939515e22adb298388d": "1b47061264138c4ac30d75fd1eb44270",
            "value": "v",
        }
    }
    assert scrub(wrapped, keep=frozenset({"secretKey"})) == {"secretKey": SECRET_MARKER}


def test_committed_stacks_contain_no_secret_values(declared) -> None:
    for stack in ("localstack", "prod"):
        text = dumps(build_inventory(declared(stack), stack))
        assert "4dabf18193072939515e22adb298388d" not in text  # the wire's secret wrapper


def test_diff_reports_added_removed_and_changed_inputs(declared) -> None:
    before = json.loads(dumps(build_inventory(declared("dev"), "dev")))
    after = json.loads(dumps(before))
    gone = after["resources"].pop(0)
    target = next(r for r in after["resources"] if r["custom"] and r["inputs"])
    key = sorted(target["inputs"])[0]
    target["inputs"][key] = "changed"
    target["protect"] = not target["protect"]
    after["resources"].append({**gone, "urn": gone["urn"] + "-new", "name": gone["name"] + "-new"})

    changes = diff_inventories(before, after)
    assert changes.removed == (gone["urn"],)
    assert changes.added == (gone["urn"] + "-new",)
    paths = [c.path for c in changes.changed[target["urn"]]]
    assert "protect" in paths
    assert any(p == f"inputs.{key}" or p.startswith(f"inputs.{key}") for p in paths)
    assert diff_inventories(before, before).empty


def test_dot_graph_has_every_custom_resource_and_component_cluster(declared) -> None:
    inventory = build_inventory(declared("prod"), "prod")
    dot = to_dot(inventory)
    assert dot.startswith("digraph platform {") and dot.rstrip().endswith("}")
    custom = [
        r for r in inventory["resources"] if r["custom"] and not r["type"].startswith("pulumi:")
    ]
    assert dot.count("[label=") == len(custom)
    components = [r for r in inventory["resources"] if not r["custom"]]
    assert dot.count("subgraph cluster_") == len(components)
    assert "[style=dashed]" in dot


def _one_bucket() -> None:
    aws.s3.BucketV2("after-asyncio-run")


def test_a_program_runs_after_asyncio_run_left_no_current_loop() -> None:
    """`asyncio.run()` leaves its thread without a current loop; the SDK's mocks need one."""

    async def nothing() -> None:
        return None

    asyncio.run(nothing())
    declared = run_program(_one_bucket, stack="dev", region="eu-west-1")
    assert [r.name for r in declared.resources if r.type == "aws:s3/bucketV2:BucketV2"] == [
        "after-asyncio-run"
    ]
