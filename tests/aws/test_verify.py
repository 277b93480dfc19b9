"""`platform verify` against the emulators.

EKS, MSK, RDS and ECR exist only on moto (LocalStack's free edition refuses them); there the
checks run for real. Against LocalStack the same services must come out as "not emulated", and
the state bucket check runs on both.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import pytest
from botocore.exceptions import ClientError
from typer.testing import CliRunner, Result

from platform_cli.aws_names import ExpectedNames, names_for_env
from platform_cli.main import app
from platform_cli.state_backend import bootstrap
from platform_cli.verify import Check, Status, exit_code, run_checks
from tests.aws.conftest import Emulator, public_unencrypted_bucket

runner = CliRunner()
DEV = names_for_env("dev")


def _run(*args: str) -> Result:
    return runner.invoke(app, list(args), catch_exceptions=False)


def _by_area(checks: list[Check]) -> dict[str, list[tuple[str, Status]]]:
    table: dict[str, list[tuple[str, Status]]] = {}
    for check in checks:
        table.setdefault(check.area, []).append((check.name, check.status))
    return table


@contextlib.contextmanager
def deployed_dev(aws: Emulator, names: ExpectedNames, public_db: bool = False) -> Iterator[None]:
    """What `pulumi up -s dev` would leave behind, as moto API records; deleted afterwards."""
    region = names.region
    eks = aws.client("eks", region)
    kafka = aws.client("kafka", region)
    rds = aws.client("rds", region)
    ecr = aws.client("ecr", region)
    eks.create_cluster(
        name=names.eks_cluster,
        roleArn="arn:aws:iam::123456789012:role/eks",
        resourcesVpcConfig={"subnetIds": ["subnet-a", "subnet-b"]},
    )
    msk_arn = kafka.create_cluster_v2(
        ClusterName=names.msk_cluster,
        Provisioned={
            "BrokerNodeGroupInfo": {
                "InstanceType": "kafka.t3.small",
                "ClientSubnets": ["subnet-a", "subnet-b"],
            },
            "KafkaVersion": "3.6.0",
            "NumberOfBrokerNodes": 2,
        },
    )["ClusterArn"]
    rds.create_db_instance(
        DBInstanceIdentifier=names.rds_instance,
        DBInstanceClass="db.t4g.micro",
        Engine="postgres",
        MasterUsername="platform",
        ManageMasterUserPassword=True,
        AllocatedStorage=20,
        StorageEncrypted=not public_db,
        PubliclyAccessible=public_db,
    )
    for repository in names.ecr_repositories:
        ecr.create_repository(
            repositoryName=repository,
            imageTagMutability="IMMUTABLE",
            imageScanningConfiguration={"scanOnPush": True},
        )
    try:
        yield
    finally:
        with contextlib.suppress(ClientError):
            eks.delete_cluster(name=names.eks_cluster)
        with contextlib.suppress(ClientError):
            kafka.delete_cluster(ClusterArn=msk_arn)
        with contextlib.suppress(ClientError):
            rds.delete_db_instance(DBInstanceIdentifier=names.rds_instance, SkipFinalSnapshot=True)
        for repository in names.ecr_repositories:
            with contextlib.suppress(ClientError):
                ecr.delete_repository(repositoryName=repository, force=True)


def test_deployed_dev_passes_except_what_moto_cannot_model(moto_aws: Emulator) -> None:
    bootstrap(DEV, {"project": "platform"})
    with deployed_dev(moto_aws, DEV):
        checks = run_checks(DEV)
        result = _run("verify", "--env", "dev")

    assert _by_area(checks) == {
        "eks": [("plat-dev-eks", Status.PASS)],
        # moto keeps MSK clusters CREATING and has no get_bootstrap_brokers.
        "msk": [
            ("plat-dev-kafka", Status.FAIL),
            ("plat-dev-kafka brokers", Status.NOT_EMULATED),
        ],
        "rds": [("plat-dev-postgres", Status.PASS)],
        "ecr": [(repo, Status.PASS) for repo in DEV.ecr_repositories],
        "state": [("plat-dev-pulumi-state-123456789012", Status.PASS)],
    }
    msk_state = next(c for c in checks if c.name == "plat-dev-kafka")
    assert msk_state.detail == "state CREATING"
    assert exit_code(checks) == 1
    assert result.exit_code == 1
    assert "not emulated" in result.output


def test_public_unencrypted_database_fails_with_both_reasons(moto_aws: Emulator) -> None:
    names = ExpectedNames(**{**DEV.__dict__, "rds_instance": "plat-dev-postgres-public"})
    with deployed_dev(moto_aws, names, public_db=True):
        rds = next(c for c in run_checks(names) if c.area == "rds")
    assert rds.status is Status.FAIL
    assert rds.detail == "storage not encrypted; publicly accessible"


def test_nothing_deployed_fails_every_check_and_exits_1(moto_aws: Emulator) -> None:
    result = _run("verify", "--env", "dev")
    checks = run_checks(DEV)

    assert result.exit_code == 1
    assert {c.area for c in checks if c.status is Status.FAIL} == {
        "eks",
        "msk",
        "rds",
        "ecr",
        "state",
    }
    assert "cluster not found" in result.output
    assert "run platform bootstrap" in result.output


def test_localstack_stack_checks_only_its_state_bucket(aws: Emulator) -> None:
    names = names_for_env("localstack")
    bootstrap(names, {"project": "platform"})

    checks = run_checks(names)
    result = _run("verify", "--env", "localstack")

    statuses = {c.area: c.status for c in checks}
    assert statuses == {
        "eks": Status.SKIPPED,
        "msk": Status.SKIPPED,
        "rds": Status.SKIPPED,
        "ecr": Status.SKIPPED,
        "state": Status.PASS,
    }
    assert result.exit_code == 0, result.output


def test_misconfigured_state_bucket_fails_verify(aws: Emulator) -> None:
    public_unencrypted_bucket(aws, names_for_env("localstack"))
    state = next(c for c in run_checks(names_for_env("localstack")) if c.area == "state")
    assert state.status is Status.FAIL
    assert "not encrypted" in state.detail
    assert "allows access to everyone" in state.detail


@pytest.mark.localstack
def test_localstack_reports_its_paid_services_as_not_emulated(
    localstack_emulator: Emulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL", localstack_emulator.endpoint)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "test")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "test")

    checks = run_checks(DEV)

    statuses = {c.area: c.status for c in checks}
    assert statuses["eks"] is Status.NOT_EMULATED
    assert statuses["msk"] is Status.NOT_EMULATED
    assert statuses["rds"] is Status.NOT_EMULATED
    assert statuses["ecr"] is Status.NOT_EMULATED
    assert statuses["state"] is Status.FAIL  # not bootstrapped: a real failure, not a gap
    eks = next(c for c in checks if c.area == "eks")
    assert "not included in your current license plan" in eks.detail
