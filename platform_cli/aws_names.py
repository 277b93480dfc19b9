"""The AWS names one environment should have: the single map from env to expected names.

`platform bootstrap` creates the state bucket and the secrets key under these names, and
`platform verify` looks up the EKS cluster, MSK cluster, RDS instance and ECR repositories the
Pulumi program declares. The program derives its physical names from `cfg.name_prefix`
(`plat-<env>`); `tests/aws/test_names_match_program.py` runs the program offline and fails
when a name here drifts from what it declares.
"""

from __future__ import annotations

from dataclasses import dataclass

from infra.config import PlatformConfig, load_stack_file
from infra.contracts import APP_NAMES


@dataclass(frozen=True)
class ExpectedNames:
    """Physical names of one environment's AWS resources (state backend and platform)."""

    env: str
    region: str
    state_bucket_base: str
    """Bucket name without the account suffix; S3 names are global, so the account id is added."""
    secrets_key_alias: str
    eks_cluster: str
    msk_cluster: str
    rds_instance: str
    ecr_repositories: tuple[str, ...]
    cluster_on_eks: bool
    kafka_on_msk: bool
    database_on_rds: bool
    registry_on_ecr: bool
    """The `local` flavour has no ECR (LocalStack's free edition refuses it)."""

    def state_bucket(self, account_id: str) -> str:
        return f"{self.state_bucket_base}-{account_id}"


def expected_names(cfg: PlatformConfig) -> ExpectedNames:
    """Every name `bootstrap`/`verify` use for one stack, derived from its typed config."""
    prefix = cfg.name_prefix
    return ExpectedNames(
        env=cfg.stack,
        region=cfg.region,
        state_bucket_base=f"{prefix}-pulumi-state",
        secrets_key_alias=f"alias/{prefix}-pulumi-secrets",
        eks_cluster=f"{prefix}-eks",
        msk_cluster=f"{prefix}-kafka",
        rds_instance=f"{prefix}-postgres",
        # One repository per app under the shared prefix; the owning stack declares them
        # (`platform:registry.create`), every cloud stack pulls from (and verifies) them.
        ecr_repositories=tuple(f"{cfg.registry.repository_prefix}/{app}" for app in APP_NAMES),
        cluster_on_eks=cfg.cluster.mode == "eks",
        kafka_on_msk=cfg.kafka.mode == "msk",
        database_on_rds=cfg.database.mode == "rds",
        registry_on_ecr=cfg.flavour == "aws",
    )


def names_for_env(env: str) -> ExpectedNames:
    """`expected_names` for a committed stack file (`stacks/Pulumi.<env>.yaml`)."""
    return expected_names(load_stack_file(env))
