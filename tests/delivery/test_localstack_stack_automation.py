"""The `localstack` stack for real: Automation API `up` -> boto3 checks -> `destroy`.

Needs what this machine lacks: the Pulumi CLI with the pinned aws and kubernetes plugins, a
Kubernetes cluster behind the stack's kubeconfig context (`kind-platform`: the stack installs
Strimzi, CloudNativePG, ArgoCD... there), and LocalStack. Each missing part skips the test with
the reason. How to run it: docs/delivery.md ("The localstack stack, end to end").

The project is copied to a temporary directory so that pointing the stack at this run's LocalStack
endpoint never edits the committed `stacks/Pulumi.localstack.yaml`.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from importlib.metadata import version
from pathlib import Path
from typing import Any

import boto3
import pytest
import yaml
from botocore.config import Config

REPO = Path(__file__).resolve().parents[2]
STACK = "localstack"
PLUGINS = {"aws": version("pulumi-aws"), "kubernetes": version("pulumi-kubernetes")}

pytestmark = [pytest.mark.localstack, pytest.mark.slow]


def _missing_prerequisite() -> str | None:
    pulumi = shutil.which("pulumi")
    if pulumi is None:
        return (
            "Pulumi CLI not installed (https://www.pulumi.com/docs/install/); see docs/delivery.md"
        )
    listed = subprocess.run(
        [pulumi, "plugin", "ls", "--json"], capture_output=True, text=True, check=False
    )
    installed = {
        (p.get("name"), p.get("version"))
        for p in (json.loads(listed.stdout or "[]") or [])
        if p.get("kind") == "resource"
    }
    missing = [f"{n} {v}" for n, v in PLUGINS.items() if (n, v) not in installed]
    if missing:
        return (
            f"Pulumi plugins missing: {', '.join(missing)} (`pulumi plugin install resource ...`)"
        )
    kubectl = shutil.which("kubectl")
    context = yaml.safe_load((REPO / "stacks/Pulumi.localstack.yaml").read_text())["config"][
        "platform:cluster"
    ]["kubeconfigContext"]
    contexts = (
        subprocess.run(
            [kubectl, "config", "get-contexts", "-o", "name"],
            capture_output=True,
            text=True,
            check=False,
        ).stdout.split()
        if kubectl
        else []
    )
    if context not in contexts:
        return f"no kubeconfig context {context!r} (e.g. `kind create cluster --name platform`)"
    return None


@pytest.fixture(scope="module")
def automation_endpoint(request: pytest.FixtureRequest) -> str:
    """The session's LocalStack (tests/conftest.py), once the Pulumi prerequisites are known."""
    reason = _missing_prerequisite()
    if reason:
        pytest.skip(reason)
    endpoint: str = request.getfixturevalue("localstack_endpoint")
    return endpoint


def _project_copy(tmp: Path, endpoint: str) -> Path:
    for name in ("infra", "stacks", "apps"):
        shutil.copytree(REPO / name, tmp / name, ignore=shutil.ignore_patterns("__pycache__"))
    project = yaml.safe_load((REPO / "Pulumi.yaml").read_text())
    project["runtime"]["options"]["virtualenv"] = str(REPO / ".venv")
    (tmp / "Pulumi.yaml").write_text(yaml.safe_dump(project))
    stack_file = tmp / "stacks" / f"Pulumi.{STACK}.yaml"
    settings = yaml.safe_load(stack_file.read_text())
    settings["config"]["platform:localstack"]["endpoint"] = endpoint
    stack_file.write_text(yaml.safe_dump(settings))
    return tmp


def test_up_creates_what_boto3_sees_and_destroy_removes_it(
    automation_endpoint: str, tmp_path: Path
) -> None:
    localstack_endpoint = automation_endpoint
    from pulumi import automation as auto

    work_dir = _project_copy(tmp_path / "project", localstack_endpoint)
    backend = tmp_path / "state"
    backend.mkdir()
    env = {
        "PULUMI_BACKEND_URL": f"file://{backend}",
        "PULUMI_CONFIG_PASSPHRASE": "automation-test-only",
        "AWS_ACCESS_KEY_ID": "test",
        "AWS_SECRET_ACCESS_KEY": "test",
        "PYTHONPATH": str(work_dir),
    }
    stack = auto.create_or_select_stack(
        stack_name=STACK,
        work_dir=str(work_dir),
        opts=auto.LocalWorkspaceOptions(env_vars=env, secrets_provider="passphrase"),
    )
    try:
        outputs = stack.up(on_output=lambda _line: None).outputs
        session: Any = boto3.session.Session(
            aws_access_key_id="test", aws_secret_access_key="test", region_name="us-east-1"
        )
        config = Config(s3={"addressing_style": "path"})

        def client(service: str) -> Any:
            return session.client(service, endpoint_url=localstack_endpoint, config=config)

        vpc_id = outputs["vpcId"].value
        assert client("ec2").describe_vpcs(VpcIds=[vpc_id])["Vpcs"][0]["State"] == "available"
        bucket = outputs["auditArchiveBucket"].value
        rule = client("s3").get_bucket_encryption(Bucket=bucket)[
            "ServerSideEncryptionConfiguration"
        ]["Rules"][0]
        assert rule["ApplyServerSideEncryptionByDefault"]["SSEAlgorithm"] == "aws:kms"
        for arn in outputs["kmsKeyArns"].value.values():
            assert client("kms").describe_key(KeyId=arn)["KeyMetadata"]["KeyState"] == "Enabled"

        stack.destroy(on_output=lambda _line: None)
        buckets = {b["Name"] for b in client("s3").list_buckets()["Buckets"]}
        assert bucket not in buckets
        assert (
            client("ec2").describe_vpcs(Filters=[{"Name": "vpc-id", "Values": [vpc_id]}])["Vpcs"]
            == []
        )
    finally:
        stack.destroy(on_output=lambda _line: None)
        stack.workspace.remove_stack(STACK)
