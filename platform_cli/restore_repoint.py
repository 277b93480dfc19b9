"""After an RDS restore: which facts change, and how to move the stack onto the new instance.

The facts channel (`infra/platform/facts.py`) takes DB_HOST, DB_PORT, DB_NAME and DB_SECRET_REF
from the `Database` component's instance outputs, not from stack config: there is no
`pulumi config set` that repoints it, and a fact must never be copied by hand. So the restored
instance has to BECOME the stack's instance:

1. rename the old instance out of the way, and the restored one to the declared identifier
   (an RDS endpoint is `<identifier>.<account/region suffix>`, so DB_HOST comes back unchanged);
2. swap the Pulumi state: drop the old instance's entry, import the restored one under the
   same URN, parent and provider (otherwise the next `pulumi up` would "fix" the rename);
3. `pulumi up`: the outputs now read the restored instance and the `platform-facts` ConfigMap
   gets its DB_SECRET_REF (a restore makes a new RDS-managed secret). The restored database
   holds the apps' login roles as they were at the restore point, so their passwords may be
   older than the apps' own secrets: one run of the db-roles rotation Job (connecting as the
   restored master user) gives each app a fresh login and publishes it; the apps read their
   secret on every new connection.

`tests/aws/test_rds_restore.py` checks the URNs printed here against the program run offline.
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass
from datetime import UTC, datetime

from infra.config import PROJECT, PlatformConfig
from infra.contracts import APP_NAMESPACE, FACTS_CONFIGMAP, Fact
from infra.gitops.manifests.jobs import DB_ROLES_ROTATE_JOB
from platform_cli.rds_restore import Instance

DATABASE_COMPONENT = ("platform:data:Database", "database")
"""(type, name) of the component `infra/program.py` declares the instance in."""
INSTANCE_RESOURCE = ("aws:rds/instance:Instance", "database-instance")
AWS_PROVIDER = ("pulumi:providers:aws", "aws")

INSTANCE_FACTS: tuple[Fact, ...] = (Fact.DB_HOST, Fact.DB_PORT, Fact.DB_NAME, Fact.DB_SECRET_REF)
"""The facts the channel takes from the RDS instance; every other fact is untouched."""


@dataclass(frozen=True)
class ProgramUrns:
    instance: str
    component: str
    provider: str


def program_urns(cfg: PlatformConfig) -> ProgramUrns:
    """URNs of the instance, its component and the AWS provider in the stack's state.

    Top-level resources are children of the stack, whose type the engine leaves out of their
    URNs; the instance's URN carries its component's type.
    """
    base = f"urn:pulumi:{cfg.stack}::{PROJECT}::"
    component_type, component_name = DATABASE_COMPONENT
    instance_type, instance_name = INSTANCE_RESOURCE
    provider_type, provider_name = AWS_PROVIDER
    return ProgramUrns(
        instance=f"{base}{component_type}${instance_type}::{instance_name}",
        component=f"{base}{component_type}::{component_name}",
        provider=f"{base}{provider_type}::{provider_name}",
    )


@dataclass(frozen=True)
class FactChange:
    fact: Fact
    current: str | None
    restored: str | None
    after_swap: str | None

    @property
    def changes(self) -> bool:
        return self.current != self.after_swap


def _address_after_rename(restored: Instance, declared: str) -> str | None:
    address = restored.address
    if address is None or not address.startswith(f"{restored.identifier}."):
        return address
    return declared + address[len(restored.identifier) :]


def fact_changes(source: Instance | None, restored: Instance, declared: str) -> list[FactChange]:
    """Per instance fact: its value now, on the restored instance, and once it is swapped in."""

    def now(value: object) -> str | None:
        return None if value is None else str(value)

    current = {
        Fact.DB_HOST: source.address if source else None,
        Fact.DB_PORT: now(source.port) if source else None,
        Fact.DB_NAME: source.db_name if source else None,
        Fact.DB_SECRET_REF: source.secret_arn if source else None,
    }
    restored_values = {
        Fact.DB_HOST: restored.address,
        Fact.DB_PORT: now(restored.port),
        Fact.DB_NAME: restored.db_name,
        Fact.DB_SECRET_REF: restored.secret_arn,
    }
    swapped = dict(restored_values) | {Fact.DB_HOST: _address_after_rename(restored, declared)}
    return [
        FactChange(fact, current[fact], restored_values[fact], swapped[fact])
        for fact in INSTANCE_FACTS
    ]


@dataclass(frozen=True)
class Step:
    title: str
    commands: tuple[str, ...]


def repoint_steps(
    cfg: PlatformConfig,
    declared: str,
    restored: Instance,
    *,
    source_exists: bool,
    now: datetime | None = None,
) -> list[Step]:
    """The commands that make `restored` the stack's instance, in order."""
    stack = cfg.stack
    region = cfg.region
    q = shlex.quote
    urns = program_urns(cfg)
    stamp = (now or datetime.now(UTC)).strftime("%Y%m%d-%H%M")
    retired = f"{declared}-replaced-{stamp}"
    aws = f"aws --region {region} rds"
    steps = [
        Step(
            "Check the restored data (the new instance's own RDS-managed secret)",
            (
                f"aws --region {region} secretsmanager get-secret-value --secret-id "
                f"{q(restored.secret_arn or '<secret arn>')} --query SecretString --output text",
                f'psql "host={restored.address} port={restored.port} dbname={restored.db_name} '
                f'user={restored.master_username} sslmode=verify-full"',
            ),
        )
    ]
    if source_exists:
        steps.append(
            Step(
                "Move the old instance out of the way (kept until you delete it)",
                (
                    f"{aws} modify-db-instance --db-instance-identifier {declared} "
                    f"--new-db-instance-identifier {retired} --apply-immediately",
                    f"{aws} wait db-instance-available --db-instance-identifier {retired}",
                ),
            )
        )
    steps += [
        Step(
            "Give the restored instance the declared identifier (DB_HOST stays the same)",
            (
                f"{aws} modify-db-instance --db-instance-identifier {restored.identifier} "
                f"--new-db-instance-identifier {declared} --apply-immediately",
                f"{aws} wait db-instance-available --db-instance-identifier {declared}",
            ),
        ),
        Step(
            "Point the Pulumi state at it: same URN, parent and provider",
            (
                *(
                    (f"pulumi state unprotect -s {stack} {q(urns.instance)} --yes",)
                    if cfg.protection.protect_resources
                    else ()
                ),
                f"pulumi state delete -s {stack} {q(urns.instance)} --yes",
                f"pulumi import -s {stack} {INSTANCE_RESOURCE[0]} {INSTANCE_RESOURCE[1]} "
                f"{declared} --parent {q(f'{DATABASE_COMPONENT[1]}={urns.component}')} "
                f"--provider {q(f'{AWS_PROVIDER[1]}={urns.provider}')} "
                f"--protect={str(cfg.protection.protect_resources).lower()} "
                "--generate-code=false --yes",
            ),
        ),
        Step(
            "Let the facts channel follow, give the apps fresh logins, restart them",
            (
                f"pulumi preview -s {stack} --diff",
                f"pulumi up -s {stack}",
                f"kubectl -n {APP_NAMESPACE} get configmap {FACTS_CONFIGMAP} -o yaml",
                f"kubectl -n {APP_NAMESPACE} create job {DB_ROLES_ROTATE_JOB}-after-restore "
                f"--from=cronjob/{DB_ROLES_ROTATE_JOB}",
                f"kubectl -n {APP_NAMESPACE} wait --for=condition=complete --timeout=10m "
                f"job/{DB_ROLES_ROTATE_JOB}-after-restore",
                f"kubectl -n {APP_NAMESPACE} rollout restart deployment",
            ),
        ),
    ]
    if source_exists:
        steps.append(
            Step(
                "Once the apps are healthy on it, retire the old instance",
                (
                    f"{aws} modify-db-instance --db-instance-identifier {retired} "
                    "--no-deletion-protection --apply-immediately",
                    f"{aws} delete-db-instance --db-instance-identifier {retired} "
                    f"--final-db-snapshot-identifier {retired}-final",
                ),
            )
        )
    return steps
