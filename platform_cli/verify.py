"""Post-deploy smoke checks of one environment, through boto3.

Each check yields one `Check` row: EKS cluster ACTIVE, MSK cluster ACTIVE with IAM bootstrap
brokers, RDS instance available + encrypted + private, ECR repositories present, state bucket
compliant. A service the emulator does not serve (LocalStack's free edition refuses EKS, MSK,
RDS and ECR; moto has no MSK `get_bootstrap_brokers`) is reported as NOT_EMULATED with the
emulator's own words, rather than as an obscure failure. A part that the stack config runs
in the cluster instead (the `localstack` stack) is SKIPPED with that reason.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from botocore.exceptions import ClientError, EndpointConnectionError

from platform_cli import aws_session
from platform_cli.aws_names import ExpectedNames
from platform_cli.state_backend import audit_bucket, bucket_exists, find_key_by_alias


class Status(StrEnum):
    PASS = "pass"
    FAIL = "fail"
    NOT_EMULATED = "not emulated"
    SKIPPED = "skipped"


@dataclass(frozen=True)
class Check:
    area: str
    name: str
    status: Status
    detail: str


# What the emulators answer for a service they do not serve: LocalStack's community edition
# says the API is not included in the license plan (HTTP 501); moto raises NotImplementedError,
# which its server turns into HTTP 500 with that text.
_NOT_EMULATED_MARKERS = (
    "not included in your current license plan",
    "not yet implemented",
    "notimplemented",
    "pro feature",
)


def _not_emulated(exc: ClientError) -> bool:
    if aws_session.endpoint_override() is None:
        return False  # real AWS serves everything; an error there is a real failure
    error = exc.response.get("Error", {})
    text = f"{error.get('Code', '')} {error.get('Message', '')}".lower()
    status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
    # moto's server answers an unimplemented action with a bare HTML 500 page.
    bare_500 = status == 500 and "<html" in text
    return status == 501 or bare_500 or any(marker in text for marker in _NOT_EMULATED_MARKERS)


def _error_text(exc: ClientError) -> str:
    error = exc.response.get("Error", {})
    message = str(error.get("Message", ""))
    if "<html" in message.lower():
        status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
        return f"{exc.operation_name}: the emulator answered HTTP {status} (not implemented)"
    return f"{exc.operation_name}: {error.get('Code', 'error')}: {message}".strip()


def _guarded(area: str, name: str, probe: Callable[[], Iterator[Check]]) -> Iterator[Check]:
    """Run one probe; map emulator refusals and API errors to a clear row."""
    try:
        yield from probe()
    except ClientError as exc:
        status = Status.NOT_EMULATED if _not_emulated(exc) else Status.FAIL
        yield Check(area, name, status, _error_text(exc))
    except EndpointConnectionError as exc:
        yield Check(area, name, Status.FAIL, f"cannot reach the AWS endpoint: {exc}")


def _check_eks(names: ExpectedNames) -> Iterator[Check]:
    eks = aws_session.client("eks", names.region)

    def probe() -> Iterator[Check]:
        try:
            cluster = eks.describe_cluster(name=names.eks_cluster)["cluster"]
        except eks.exceptions.ResourceNotFoundException:
            yield Check("eks", names.eks_cluster, Status.FAIL, "cluster not found")
            return
        state = cluster.get("status")
        ok = state == "ACTIVE"
        yield Check("eks", names.eks_cluster, Status.PASS if ok else Status.FAIL, f"status {state}")

    yield from _guarded("eks", names.eks_cluster, probe)


def _check_msk(names: ExpectedNames) -> Iterator[Check]:
    kafka = aws_session.client("kafka", names.region)
    label = names.msk_cluster
    arn: list[str] = []

    def state_probe() -> Iterator[Check]:
        found = kafka.list_clusters_v2(ClusterNameFilter=names.msk_cluster)["ClusterInfoList"]
        cluster = next((c for c in found if c.get("ClusterName") == names.msk_cluster), None)
        if cluster is None:
            yield Check("msk", label, Status.FAIL, "cluster not found")
            return
        arn.append(cluster["ClusterArn"])
        state = cluster.get("State")
        ok = state == "ACTIVE"
        yield Check("msk", label, Status.PASS if ok else Status.FAIL, f"state {state}")

    yield from _guarded("msk", label, state_probe)
    if not arn:
        return

    def brokers_probe() -> Iterator[Check]:
        brokers = kafka.get_bootstrap_brokers(ClusterArn=arn[0])
        iam = brokers.get("BootstrapBrokerStringSaslIam", "")
        if iam:
            yield Check("msk", f"{label} brokers", Status.PASS, f"IAM bootstrap: {iam}")
        else:
            yield Check(
                "msk", f"{label} brokers", Status.FAIL, "no IAM (SASL/IAM) bootstrap brokers"
            )

    yield from _guarded("msk", f"{label} brokers", brokers_probe)


def _check_rds(names: ExpectedNames) -> Iterator[Check]:
    rds = aws_session.client("rds", names.region)
    label = names.rds_instance

    def probe() -> Iterator[Check]:
        try:
            found = rds.describe_db_instances(DBInstanceIdentifier=label)["DBInstances"]
        except rds.exceptions.DBInstanceNotFoundFault:
            yield Check("rds", label, Status.FAIL, "instance not found")
            return
        instance = found[0]
        problems = []
        if instance.get("DBInstanceStatus") != "available":
            problems.append(f"status {instance.get('DBInstanceStatus')}")
        if not instance.get("StorageEncrypted"):
            problems.append("storage not encrypted")
        if instance.get("PubliclyAccessible"):
            problems.append("publicly accessible")
        detail = "; ".join(problems) or "available, encrypted, not public"
        yield Check("rds", label, Status.FAIL if problems else Status.PASS, detail)

    yield from _guarded("rds", label, probe)


def _check_ecr(names: ExpectedNames) -> Iterator[Check]:
    ecr = aws_session.client("ecr", names.region)

    def probe() -> Iterator[Check]:
        for repository in names.ecr_repositories:
            try:
                repo = ecr.describe_repositories(repositoryNames=[repository])["repositories"][0]
            except ecr.exceptions.RepositoryNotFoundException:
                yield Check("ecr", repository, Status.FAIL, "repository not found")
                continue
            problems = []
            if not repo.get("imageScanningConfiguration", {}).get("scanOnPush"):
                problems.append("scan on push off")
            if repo.get("imageTagMutability") != "IMMUTABLE":
                problems.append("tags mutable")
            status = Status.FAIL if problems else Status.PASS
            yield Check("ecr", repository, status, "; ".join(problems) or "scan on push, immutable")

    yield from _guarded("ecr", "repositories", probe)


def _check_state_bucket(names: ExpectedNames) -> Iterator[Check]:
    def probe() -> Iterator[Check]:
        bucket = names.state_bucket(aws_session.account_id(names.region))
        s3 = aws_session.client("s3", names.region)
        if not bucket_exists(s3, bucket):
            yield Check("state", bucket, Status.FAIL, "bucket not found (run platform bootstrap)")
            return
        key_arn = find_key_by_alias(
            aws_session.client("kms", names.region), names.secrets_key_alias
        )
        problems = audit_bucket(s3, bucket, key_arn, names.secrets_key_alias)
        if key_arn is None:
            problems.append(f"secrets key {names.secrets_key_alias} not found")
        detail = "; ".join(problems) or "versioned, SSE-KMS, private, TLS-only, lifecycle"
        yield Check("state", bucket, Status.FAIL if problems else Status.PASS, detail)

    yield from _guarded("state", names.state_bucket_base, probe)


def _in_cluster(area: str, name: str, what: str) -> Iterator[Check]:
    yield Check(area, name, Status.SKIPPED, f"{what} runs in the cluster (stack config)")


def run_checks(names: ExpectedNames) -> list[Check]:
    """Every check for one environment, in a stable order."""
    checks: list[Check] = []
    managed = (
        (names.cluster_on_eks, _check_eks, "eks", names.eks_cluster, "kubernetes"),
        (names.kafka_on_msk, _check_msk, "msk", names.msk_cluster, "kafka (Strimzi)"),
        (
            names.database_on_rds,
            _check_rds,
            "rds",
            names.rds_instance,
            "postgresql (CloudNativePG)",
        ),
    )
    for on_aws, check, area, name, what in managed:
        checks.extend(check(names) if on_aws else _in_cluster(area, name, what))
    if names.registry_on_ecr:
        checks.extend(_check_ecr(names))
    else:
        checks.append(
            Check("ecr", "repositories", Status.SKIPPED, "images come from a local registry")
        )
    checks.extend(_check_state_bucket(names))
    return checks


def exit_code(checks: list[Check]) -> int:
    """1 if anything failed; emulator gaps and config-skipped parts do not fail the run."""
    return 1 if any(c.status is Status.FAIL for c in checks) else 0


def summarize(checks: list[Check]) -> dict[str, Any]:
    return {status.value: sum(1 for c in checks if c.status is status) for status in Status}
