"""Log shipping on EKS: Fluent Bit on every node, into one CloudWatch log group per stack.

The log group is declared here (retention from `observability.logRetentionDays`, encrypted with
the stack's logs key), so Fluent Bit's role only writes streams and events into it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import pulumi
import pulumi_aws as aws

from infra.config import LOG_RETENTION_DAYS
from infra.naming import merge_tags
from infra.platform import charts
from infra.platform.chart_component import NamespacedChart


def pod_log_group_name(cluster_name: str) -> str:
    return f"/aws/eks/{cluster_name}/pods"


@dataclass(frozen=True)
class PodLogGroupArgs:
    """The pods' log group: name from the cluster, retention and KMS key from the config."""

    cluster_name: str
    retention_days: int
    kms_key_arn: pulumi.Input[str]
    tags: dict[str, str] = field(default_factory=dict)


def pod_log_group(
    resource_name: str, args: PodLogGroupArgs, opts: pulumi.ResourceOptions
) -> aws.cloudwatch.LogGroup:
    """Declared before the identities (Fluent Bit's policy names its ARN)."""
    if args.retention_days not in LOG_RETENTION_DAYS:
        raise ValueError(
            f"retention_days: {args.retention_days}; allowed: "
            f"{', '.join(str(d) for d in LOG_RETENTION_DAYS)}"
        )
    name = pod_log_group_name(args.cluster_name)
    return aws.cloudwatch.LogGroup(
        resource_name,
        name=name,
        retention_in_days=args.retention_days,
        kms_key_id=args.kms_key_arn,
        tags=merge_tags(name, args.tags, {}),
        opts=opts,
    )


@dataclass(frozen=True)
class LogShippingArgs:
    """Inputs: the provider, region, the log group's name, and what the release waits for
    (Fluent Bit's Pod Identity association, the monitoring CRDs)."""

    k8s_provider: pulumi.ProviderResource
    region: str
    log_group_name: pulumi.Input[str]
    wait_for: Sequence[pulumi.Resource] = ()


class LogShipping(NamespacedChart):
    """The `logging` namespace and the Fluent Bit DaemonSet."""

    def __init__(
        self, name: str, args: LogShippingArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        values = pulumi.Output.from_input(args.log_group_name).apply(
            lambda group: charts.fluent_bit_values(region=args.region, log_group_name=group)
        )
        super().__init__(
            "platform:platform:LogShipping",
            name,
            charts.FLUENT_BIT,
            values,
            args,
            opts,
            release_role="fluent-bit",
        )
        self.register_outputs(self.chart_outputs())
