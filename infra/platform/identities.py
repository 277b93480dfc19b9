"""Workload identities: one IAM role per bundled app and per AWS-calling controller, bound to its
Kubernetes ServiceAccount through an EKS Pod Identity association.

The documents come from the pure `iam_policies` module; this component only turns them into
resources. Only the EKS flavour has Pod Identity: with a kubeconfig cluster (kind/k3d/minikube)
there is no Pod Identity agent and nothing could assume the roles, so the layer does not create
this component at all in that flavour.

The associations must exist before the pods start: the Pod Identity webhook injects the
credential endpoint into a pod only when an association matches at the pod's creation. That is
why the External Secrets and KEDA releases, and the root ArgoCD app (which creates the app pods),
depend on the associations declared here.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import pulumi
import pulumi_aws as aws

from infra.cluster.iam import account_from_cluster_arn, pod_identity_trust_policy
from infra.contracts import (
    APP_NAMESPACE,
    APPS,
    DB_ROLES_SERVICE_ACCOUNT,
    EXTERNAL_SECRETS_NAMESPACE,
    KEDA_NAMESPACE,
    KUBE_SYSTEM_NAMESPACE,
    LOGGING_NAMESPACE,
    TOPICS,
    TOPICS_JOB_SERVICE_ACCOUNT,
    AppContract,
)
from infra.naming import merge_tags, physical_name
from infra.platform import controller_policies, iam_policies
from infra.platform.charts import (
    CLUSTER_AUTOSCALER_SERVICE_ACCOUNT,
    EXTERNAL_DNS_SERVICE_ACCOUNT,
    EXTERNAL_SECRETS_SERVICE_ACCOUNT,
    FLUENT_BIT_SERVICE_ACCOUNT,
    KEDA_OPERATOR_SERVICE_ACCOUNT,
    LOAD_BALANCER_CONTROLLER_SERVICE_ACCOUNT,
)

IAM_ROLE_NAME_LIMIT = 64
TOPIC_NAMES = tuple(t.name for t in TOPICS)


@dataclass(frozen=True)
class WorkloadIdentitiesArgs:
    """Inputs of the workload identities.

    Attributes:
        name_prefix: prefix of physical IAM names, e.g. `plat-dev`.
        region: the AWS region (for `kms:ViaService` conditions).
        cluster_name: the EKS cluster the associations are created in.
        msk_cluster_arn: the MSK cluster's ARN, or None when Kafka is not MSK.
        msk_cluster_name: the MSK cluster's name (part of topic/group ARNs).
        msk_cluster_uuid: the MSK cluster's UUID (part of topic/group ARNs); None derives it from
            the last path segment of `msk_cluster_arn` (`.../cluster/<name>/<uuid>`).
        db_secret_arn: the RDS-managed master secret's ARN, or None when the database is not RDS.
        db_secret_kms_key_arn: the CMK that encrypts that secret, if not the AWS-managed key.
        audit_bucket_arn: the audit archive bucket's ARN (only the audit app gets access).
        audit_bucket_kms_key_arn: the CMK of the bucket's SSE-KMS encryption, if any.
        cluster_arn: the EKS cluster's ARN: every trust policy is conditioned on it and on its
            account (`aws:SourceArn`, `aws:SourceAccount`).
        vpc_id: the VPC (the load balancer controller may change security groups there only).
        hosted_zone_id: the Route 53 zone external-dns writes to (None: no external-dns role).
        pod_log_group_arn: the pods' CloudWatch log group (None: no Fluent Bit role).
        db_credentials_secret_arns: app name -> its own credentials secret (db_credentials);
            with `db_secret_arn`, the db-roles Job gets a role that reads the master secret.
        app_secret_arns / app_secrets_kms_key_arn: the apps' own secrets External Secrets syncs
            (the notifier's channels,
            Alertmanager's receivers), and their CMK.
        tags: base + user tags for every taggable resource.
    """

    name_prefix: str
    region: str
    cluster_name: pulumi.Input[str]
    cluster_arn: pulumi.Input[str]
    audit_bucket_arn: pulumi.Input[str]
    vpc_id: pulumi.Input[str] | None = None
    hosted_zone_id: str | None = None
    pod_log_group_arn: pulumi.Input[str] | None = None
    db_credentials_secret_arns: Mapping[str, pulumi.Input[str]] = field(default_factory=dict)
    msk_cluster_arn: pulumi.Input[str] | None = None
    msk_cluster_name: pulumi.Input[str] | None = None
    msk_cluster_uuid: pulumi.Input[str] | None = None
    db_secret_arn: pulumi.Input[str] | None = None
    db_secret_kms_key_arn: pulumi.Input[str] | None = None
    audit_bucket_kms_key_arn: pulumi.Input[str] | None = None
    app_secret_arns: tuple[pulumi.Input[str], ...] = ()
    app_secrets_kms_key_arn: pulumi.Input[str] | None = None
    tags: dict[str, str] = field(default_factory=dict)


def _msk_arns(values: dict[str, Any]) -> iam_policies.MskArns | None:
    arn = values.get("msk_arn")
    if not arn:
        return None
    uuid = values.get("msk_uuid") or iam_policies.cluster_uuid_from_arn(arn)
    return iam_policies.MskArns.from_cluster(arn, values["msk_name"], uuid)


class WorkloadIdentities(pulumi.ComponentResource):
    """IAM roles + Pod Identity associations for the apps, External Secrets and KEDA."""

    app_role_arns: dict[str, pulumi.Output[str]]
    associations: list[aws.eks.PodIdentityAssociation]
    external_secrets_association: aws.eks.PodIdentityAssociation | None
    keda_association: aws.eks.PodIdentityAssociation | None
    topics_job_association: aws.eks.PodIdentityAssociation | None
    db_roles_association: aws.eks.PodIdentityAssociation | None
    controller_associations: dict[str, aws.eks.PodIdentityAssociation]

    def __init__(
        self,
        name: str,
        args: WorkloadIdentitiesArgs,
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        if not args.name_prefix:
            raise ValueError("name_prefix: '' ; allowed: a non-empty prefix such as 'plat-dev'")
        if args.msk_cluster_arn is not None and args.msk_cluster_name is None:
            raise ValueError(
                "msk_cluster_name: None while msk_cluster_arn is set; allowed: the MSK cluster's "
                "name (topic and group ARNs contain it)"
            )
        super().__init__("platform:platform:WorkloadIdentities", name, None, opts)
        self._args = args
        self._name = name
        self._inputs = pulumi.Output.all(
            msk_arn=args.msk_cluster_arn,
            msk_name=args.msk_cluster_name,
            msk_uuid=args.msk_cluster_uuid,
            db_secret=args.db_secret_arn,
            db_kms=args.db_secret_kms_key_arn,
            bucket=args.audit_bucket_arn,
            bucket_kms=args.audit_bucket_kms_key_arn,
            cluster_arn=args.cluster_arn,
            vpc_id=args.vpc_id,
            log_group=args.pod_log_group_arn,
            cluster_name=args.cluster_name,
            credentials=dict(args.db_credentials_secret_arns),
            app_secrets=list(args.app_secret_arns),
            app_secrets_kms=args.app_secrets_kms_key_arn,
        )

        self.associations = []
        self.app_role_arns = {}
        for app in APPS:
            role = self._role_with_policy(
                app.name, self._app_document(app), has_statements=self._app_has_grants(app)
            )
            self.app_role_arns[app.name] = role[0].arn
            self.associations.append(
                self._associate(app.name, role, APP_NAMESPACE, app.service_account)
            )

        self.external_secrets_association = None
        if args.app_secret_arns:
            role = self._role_with_policy(
                "external-secrets",
                self._inputs.apply(
                    lambda v: iam_policies.external_secrets_policy(
                        region=args.region,
                        app_secret_arns=tuple(v["app_secrets"]),
                        app_secrets_kms_key_arn=v["app_secrets_kms"],
                    )
                ),
                has_statements=True,
            )
            self.external_secrets_association = self._associate(
                "external-secrets",
                role,
                EXTERNAL_SECRETS_NAMESPACE,
                EXTERNAL_SECRETS_SERVICE_ACCOUNT,
            )
            self.associations.append(self.external_secrets_association)

        self.db_roles_association = None
        if args.db_secret_arn is not None and args.db_credentials_secret_arns:
            self.db_roles_association = self._associate(
                "db-roles",
                self._role_with_policy(
                    "db-roles",
                    self._inputs.apply(
                        lambda v: iam_policies.db_roles_policy(
                            master_secret_arn=v["db_secret"],
                            credentials_secret_arns=sorted(v["credentials"].values()),
                            region=args.region,
                            kms_key_arn=v["db_kms"],
                        )
                    ),
                    has_statements=True,
                ),
                APP_NAMESPACE,
                DB_ROLES_SERVICE_ACCOUNT,
            )
            self.associations.append(self.db_roles_association)

        self.keda_association = None
        self.topics_job_association = None
        if args.msk_cluster_arn is not None:
            self.keda_association = self._msk_controller(
                "keda-operator",
                KEDA_NAMESPACE,
                KEDA_OPERATOR_SERVICE_ACCOUNT,
                lambda msk: iam_policies.keda_lag_reader_policy(APPS, msk=msk),
            )
            # The PreSync topics Job (rendered into gitops/) runs as this service account.
            self.topics_job_association = self._msk_controller(
                "kafka-topics",
                APP_NAMESPACE,
                TOPICS_JOB_SERVICE_ACCOUNT,
                lambda msk: iam_policies.topics_admin_policy(
                    tuple(t.name for t in TOPICS), msk=msk
                ),
            )

        self.controller_associations = self._controllers()

        self.register_outputs(
            {
                "controller_associations": {
                    k: a.association_arn for k, a in self.controller_associations.items()
                },
                "app_role_arns": self.app_role_arns,
                "associations": [a.association_arn for a in self.associations],
                "external_secrets_association": (
                    self.external_secrets_association.association_arn
                    if self.external_secrets_association
                    else None
                ),
                "keda_association": (
                    self.keda_association.association_arn if self.keda_association else None
                ),
                "db_roles_association": (
                    self.db_roles_association.association_arn if self.db_roles_association else None
                ),
                "topics_job_association": (
                    self.topics_job_association.association_arn
                    if self.topics_job_association
                    else None
                ),
            }
        )

    def _controllers(self) -> dict[str, aws.eks.PodIdentityAssociation]:
        """Roles of the ingress, DNS, node-autoscaling and log-shipping controllers."""
        args, region = self._args, self._args.region

        def cluster_scope(v: dict[str, Any]) -> dict[str, str]:
            """What the node-facing controllers' policies are conditioned on: this cluster."""
            account = account_from_cluster_arn(v["cluster_arn"])
            return {"region": region, "account": account, "cluster_name": v["cluster_name"]}

        documents: dict[str, tuple[str, str, Callable[[dict[str, Any]], dict[str, Any]]]] = {}
        if args.vpc_id is not None:
            documents["load-balancer-controller"] = (
                KUBE_SYSTEM_NAMESPACE,
                LOAD_BALANCER_CONTROLLER_SERVICE_ACCOUNT,
                lambda v: controller_policies.load_balancer_controller_policy(
                    **cluster_scope(v), vpc_id=v["vpc_id"]
                ),
            )
            documents["cluster-autoscaler"] = (
                KUBE_SYSTEM_NAMESPACE,
                CLUSTER_AUTOSCALER_SERVICE_ACCOUNT,
                lambda v: controller_policies.cluster_autoscaler_policy(**cluster_scope(v)),
            )
        zone_id = args.hosted_zone_id
        if zone_id is not None:
            documents["external-dns"] = (
                KUBE_SYSTEM_NAMESPACE,
                EXTERNAL_DNS_SERVICE_ACCOUNT,
                lambda _: controller_policies.external_dns_policy(zone_id=zone_id),
            )
        if args.pod_log_group_arn is not None:
            documents["fluent-bit"] = (
                LOGGING_NAMESPACE,
                FLUENT_BIT_SERVICE_ACCOUNT,
                lambda v: controller_policies.log_shipper_policy(log_group_arn=v["log_group"]),
            )
        found: dict[str, aws.eks.PodIdentityAssociation] = {}
        for role, (namespace, service_account, document) in documents.items():
            identity = self._role_with_policy(
                role, self._inputs.apply(document), has_statements=True
            )
            found[role] = self._associate(role, identity, namespace, service_account)
            self.associations.append(found[role])
        return found

    def _msk_controller(
        self,
        role: str,
        namespace: str,
        service_account: str,
        document: Callable[[iam_policies.MskArns], dict[str, Any]],
    ) -> aws.eks.PodIdentityAssociation:
        """A role whose policy is scoped to this MSK cluster, bound to one ServiceAccount."""

        def render(values: dict[str, Any]) -> dict[str, Any]:
            msk = _msk_arns(values)
            assert msk is not None  # only called when msk_cluster_arn is set
            return document(msk)

        identity = self._role_with_policy(role, self._inputs.apply(render), has_statements=True)
        association = self._associate(role, identity, namespace, service_account)
        self.associations.append(association)
        return association

    def _app_has_grants(self, app: AppContract) -> bool:
        """Whether the app's policy has any statement (known before the ARNs resolve)."""
        args = self._args
        return (
            args.msk_cluster_arn is not None
            or (app.uses_database and app.name in args.db_credentials_secret_arns)
            or app.uses_archive_bucket
        )

    def _app_document(self, app: AppContract) -> pulumi.Output[dict[str, Any]]:
        region = self._args.region
        return self._inputs.apply(
            lambda v: iam_policies.app_policy(
                app,
                msk=_msk_arns(v),
                region=region,
                db_credentials_secret_arn=v["credentials"].get(app.name),
                db_secret_kms_key_arn=v["db_kms"],
                archive_bucket_arn=v["bucket"],
                archive_kms_key_arn=v["bucket_kms"],
            )
        )

    def _role_with_policy(
        self, role: str, document: pulumi.Output[dict[str, Any]], *, has_statements: bool
    ) -> tuple[aws.iam.Role, list[pulumi.Resource]]:
        """The role and the resources that make it usable (its inline policy)."""
        role_name = physical_name(self._args.name_prefix, f"{role}-pod", IAM_ROLE_NAME_LIMIT)
        iam_role = aws.iam.Role(
            f"{self._name}-{role}-role",
            name=role_name,
            description=f"Pod Identity role of {role} ({self._args.name_prefix})",
            assume_role_policy=pulumi.Output.from_input(self._args.cluster_arn).apply(
                lambda arn: json.dumps(pod_identity_trust_policy(arn))
            ),
            tags=merge_tags(role_name, self._args.tags, {}),
            opts=pulumi.ResourceOptions(parent=self),
        )
        ready: list[pulumi.Resource] = [iam_role]
        if has_statements:
            policy = aws.iam.RolePolicy(
                f"{self._name}-{role}-policy",
                role=iam_role.id,
                name=f"{role}-least-privilege",
                policy=document.apply(json.dumps),
                opts=pulumi.ResourceOptions(parent=self),
            )
            ready.append(policy)
        return iam_role, ready

    def _associate(
        self,
        role: str,
        identity: tuple[aws.iam.Role, list[pulumi.Resource]],
        namespace: str,
        service_account: str,
    ) -> aws.eks.PodIdentityAssociation:
        # The association waits for the inline policy too: a pod started in between would get
        # credentials without permissions and fail its first calls.
        iam_role, ready = identity
        association_name = physical_name(self._args.name_prefix, f"{role}-pod-identity")
        return aws.eks.PodIdentityAssociation(
            f"{self._name}-{role}-association",
            cluster_name=self._args.cluster_name,
            namespace=namespace,
            service_account=service_account,
            role_arn=iam_role.arn,
            tags=merge_tags(association_name, self._args.tags, {}),
            opts=pulumi.ResourceOptions(parent=self, depends_on=ready),
        )
