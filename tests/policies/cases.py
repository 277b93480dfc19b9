"""Realistic resource inputs (camelCase, as the engine and the mock monitor record them).

`good_*` builders return inputs that satisfy every rule; tests derive failing cases by changing
one field, so each failing case differs from a passing one by exactly the property under test.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Mapping, Sequence
from typing import Any

from infra.policies import ResourceView
from infra.storage.bucket_policy import tls_only_policy

KEY_ARN = "arn:aws:kms:eu-west-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab"
TAGS = {"Name": "x", "project": "platform", "stack": "dev", "managed-by": "pulumi"}


def urn(type_: str, name: str, stack: str = "dev") -> str:
    return f"urn:pulumi:{stack}::platform::{type_}::{name}"


def view(
    type_: str,
    name: str,
    inputs: dict[str, Any],
    deps: Mapping[str, Sequence[str]] | None = None,
    provider: str | None = None,
) -> ResourceView:
    return ResourceView(
        urn=urn(type_, name),
        type=type_,
        name=name,
        inputs=inputs,
        property_dependencies=deps or {},
        provider=provider,
    )


def changed(inputs: dict[str, Any], path: str, value: Any) -> dict[str, Any]:
    """A deep copy of `inputs` with the dotted `path` set to `value` (or removed for ...)."""
    result = copy.deepcopy(inputs)
    node = result
    *parents, last = path.split(".")
    for step in parents:
        node = node[int(step)] if isinstance(node, list) else node.setdefault(step, {})
    if value is ...:
        if isinstance(node, list):
            node.pop(int(last))
        else:
            node.pop(last, None)
    elif isinstance(node, list):
        node[int(last)] = value
    else:
        node[last] = value
    return result


def good_eks_cluster() -> dict[str, Any]:
    return {
        "name": "plat-dev",
        "version": "1.32",
        "encryptionConfig": {"provider": {"keyArn": KEY_ARN}, "resources": ["secrets"]},
        "vpcConfig": {
            "endpointPrivateAccess": True,
            "endpointPublicAccess": False,
            "subnetIds": ["subnet-1", "subnet-2"],
        },
        "tags": dict(TAGS),
    }


def good_msk_cluster() -> dict[str, Any]:
    return {
        "clusterName": "plat-dev",
        "kafkaVersion": "3.6.0",
        "numberOfBrokerNodes": 3.0,
        "encryptionInfo": {
            "encryptionAtRestKmsKeyArn": KEY_ARN,
            "encryptionInTransit": {"clientBroker": "TLS", "inCluster": True},
        },
        "clientAuthentication": {"sasl": {"iam": True, "scram": False}, "unauthenticated": False},
        "tags": dict(TAGS),
    }


def good_rds_instance() -> dict[str, Any]:
    return {
        "identifier": "plat-dev",
        "engine": "postgres",
        "engineVersion": "16.6",
        "storageEncrypted": True,
        "kmsKeyId": KEY_ARN,
        "publiclyAccessible": False,
        "parameterGroupName": "plat-dev-params-1234567",
        "backupRetentionPeriod": 30.0,
        "deletionProtection": True,
        "skipFinalSnapshot": False,
        "finalSnapshotIdentifier": "plat-dev-final",
        "tags": dict(TAGS),
    }


def good_parameter_group() -> dict[str, Any]:
    return {
        "family": "postgres16",
        "name": "plat-dev-params-1234567",
        "parameters": [
            {"name": "log_min_duration_statement", "value": "500", "applyMethod": "immediate"},
            {"name": "rds.force_ssl", "value": "1", "applyMethod": "immediate"},
        ],
        "tags": dict(TAGS),
    }


def good_launch_template() -> dict[str, Any]:
    return {
        "blockDeviceMappings": [
            {
                "deviceName": "/dev/xvda",
                "ebs": {"encrypted": "true", "kmsKeyId": KEY_ARN, "volumeSize": 100.0},
            }
        ],
        "metadataOptions": {
            "httpEndpoint": "enabled",
            "httpTokens": "required",
            "httpPutResponseHopLimit": 2.0,
        },
        "tags": dict(TAGS),
    }


def good_helm_release() -> dict[str, Any]:
    return {
        "chart": "kube-prometheus-stack",
        "version": "75.15.1",
        "repositoryOpts": {"repo": "https://prometheus-community.github.io/helm-charts"},
        "values": {
            "grafana": {"image": {"repository": "grafana/grafana", "tag": "12.0.2"}},
            "prometheus": {"prometheusSpec": {"image": "quay.io/prometheus/prometheus:v3.4.2"}},
        },
    }


def policy_document(*statements: dict[str, Any]) -> str:
    return json.dumps({"Version": "2012-10-17", "Statement": list(statements)})


def tls_only_bucket_policy(bucket_arn: str = "arn:aws:s3:::audit") -> str:
    """The document the platform's buckets carry (`infra.storage.bucket_policy`)."""
    return json.dumps(tls_only_policy(bucket_arn))
