"""Autoscaling: a CPU HPA for the API, KEDA ScaledObjects on consumer-group lag for consumers."""

from __future__ import annotations

from infra.contracts import Fact
from infra.gitops.catalog import AppSpec
from infra.gitops.manifests.common import EnvContext, Manifest, metadata


def cpu_autoscaler(spec: AppSpec, ctx: EnvContext, wave: int) -> Manifest:
    sizing = spec.sizing[ctx.env]
    return {
        "apiVersion": "autoscaling/v2",
        "kind": "HorizontalPodAutoscaler",
        "metadata": metadata(spec.name, spec.name, wave=wave),
        "spec": {
            "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": spec.name},
            "minReplicas": sizing.min_replicas,
            "maxReplicas": sizing.max_replicas,
            "metrics": [
                {
                    "type": "Resource",
                    "resource": {
                        "name": "cpu",
                        "target": {
                            "type": "Utilization",
                            "averageUtilization": spec.target_cpu_percent,
                        },
                    },
                }
            ],
            # Scale down slowly: a burst of events usually comes back.
            "behavior": {"scaleDown": {"stabilizationWindowSeconds": 300}},
        },
    }


def trigger_auth_name(app: str) -> str:
    return f"{app}-kafka-aws"


def trigger_authentication(spec: AppSpec, wave: int) -> Manifest:
    """KEDA reads the lag from MSK with IAM through its own Pod Identity (provider `aws`)."""
    return {
        "apiVersion": "keda.sh/v1alpha1",
        "kind": "TriggerAuthentication",
        "metadata": metadata(trigger_auth_name(spec.name), spec.name, wave=wave),
        "spec": {"podIdentity": {"provider": "aws"}},
    }


def _kafka_trigger(spec: AppSpec, ctx: EnvContext, topic_name: str) -> Manifest:
    contract = spec.contract
    assert contract.consumer_group is not None
    meta = {
        # Resolved by KEDA from the target container's environment (the platform-facts
        # ConfigMap), so the bootstrap string is never copied into gitops/.
        "bootstrapServersFromEnv": Fact.KAFKA_BOOTSTRAP_SERVERS.value,
        "consumerGroup": contract.consumer_group,
        "topic": topic_name,
        "lagThreshold": str(spec.lag_threshold),
        "offsetResetPolicy": "earliest",
        # Never scale beyond the partitions: extra consumers would sit idle.
        "allowIdleConsumers": "false",
    }
    trigger: Manifest = {"type": "kafka", "name": f"lag-{topic_name}", "metadata": meta}
    if ctx.msk:
        meta.update({"sasl": "aws_msk_iam", "tls": "enable", "awsRegion": ctx.cfg.region})
        trigger["authenticationRef"] = {"name": trigger_auth_name(spec.name)}
    else:
        meta.update({"sasl": "none", "tls": "disable"})
    return trigger


def lag_autoscaler(spec: AppSpec, ctx: EnvContext, wave: int) -> Manifest:
    sizing = spec.sizing[ctx.env]
    return {
        "apiVersion": "keda.sh/v1alpha1",
        "kind": "ScaledObject",
        "metadata": metadata(spec.name, spec.name, wave=wave),
        "spec": {
            "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": spec.name},
            "minReplicaCount": sizing.min_replicas,
            "maxReplicaCount": sizing.max_replicas,
            "pollingInterval": 30,
            "cooldownPeriod": 300,
            "triggers": [
                _kafka_trigger(spec, ctx, name) for name in sorted(spec.contract.consumes)
            ],
        },
    }
