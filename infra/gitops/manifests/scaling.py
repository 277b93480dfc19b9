"""Autoscaling: a CPU HPA for the API, KEDA ScaledObjects on consumer-group lag for consumers."""

from __future__ import annotations

from typing import NamedTuple

from infra.contracts import Fact
from infra.gitops.catalog import AppSpec
from infra.gitops.manifests.common import EnvContext, Manifest, app_object, metadata


class _ScalerKind(NamedTuple):
    """An autoscaler API and what it calls the replica bounds."""

    api_version: str
    kind: str
    min_replicas_field: str
    max_replicas_field: str


_HPA = _ScalerKind("autoscaling/v2", "HorizontalPodAutoscaler", "minReplicas", "maxReplicas")
_KEDA = _ScalerKind("keda.sh/v1alpha1", "ScaledObject", "minReplicaCount", "maxReplicaCount")


def _deployment_scaler(
    scaler: _ScalerKind, spec: AppSpec, ctx: EnvContext, wave: int, fields: Manifest
) -> Manifest:
    """An autoscaler that scales the app's Deployment within the stack's sizing."""
    sizing = spec.sizing[ctx.env]
    body = {
        "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": spec.name},
        scaler.min_replicas_field: sizing.min_replicas,
        scaler.max_replicas_field: sizing.max_replicas,
        **fields,
    }
    return app_object(scaler.api_version, scaler.kind, spec.name, wave, body)


def cpu_autoscaler(spec: AppSpec, ctx: EnvContext, wave: int) -> Manifest:
    cpu = {
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
    }
    return _deployment_scaler(_HPA, spec, ctx, wave, cpu)


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
    lag = {
        "pollingInterval": 30,
        "cooldownPeriod": 300,
        "triggers": [_kafka_trigger(spec, ctx, name) for name in sorted(spec.contract.consumes)],
    }
    return _deployment_scaler(_KEDA, spec, ctx, wave, lag)
