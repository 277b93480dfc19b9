"""A stand-in for External Secrets Operator: ExternalSecret + Secrets Manager -> Secret data.

External Secrets cannot run without a Kubernetes API server. What it does for our objects is
small and documented (external-secrets.io, "ExternalSecret" API: `spec.data[]` maps
`remoteRef.key` (+ `property` of a JSON secret) to `secretKey`; `spec.dataFrom[].extract` copies
every key of a JSON secret; the target Secret is named `spec.target.name`, or the ExternalSecret's
own name). This module does exactly that against the AWS emulator's Secrets Manager, so the
rehearsal's pods get the same Secret names and keys a cluster would give them.
"""

from __future__ import annotations

import json
from typing import Any, Protocol

Manifest = dict[str, Any]


class ExternalSecretError(ValueError):
    """The ExternalSecret cannot be synced (what ESO would report as SecretSyncedError)."""


class SecretsManager(Protocol):
    def get_secret_value(self, *, SecretId: str) -> dict[str, Any]: ...


def _secret_json(client: SecretsManager, key: str, cache: dict[str, Any]) -> Any:
    if key not in cache:
        try:
            value = client.get_secret_value(SecretId=key)["SecretString"]
        except Exception as exc:  # boto3 raises per-service classes; ESO reports any as unsynced
            raise ExternalSecretError(f"remoteRef.key {key!r}: cannot read ({exc})") from None
        try:
            cache[key] = json.loads(value)
        except ValueError:
            cache[key] = value
    return cache[key]


def target_name(external_secret: Manifest) -> str:
    target = external_secret["spec"].get("target", {})
    return str(target.get("name") or external_secret["metadata"]["name"])


def sync(external_secret: Manifest, client: SecretsManager) -> dict[str, str]:
    """The target Secret's data (plain strings) for one ExternalSecret, or ExternalSecretError."""
    spec = external_secret["spec"]
    name = external_secret["metadata"]["name"]
    cache: dict[str, Any] = {}
    data: dict[str, str] = {}
    for item in spec.get("dataFrom", []):
        extract = item.get("extract")
        if extract is None:
            raise ExternalSecretError(f"{name}: dataFrom supports `extract` only here")
        values = _secret_json(client, extract["key"], cache)
        if not isinstance(values, dict):
            raise ExternalSecretError(f"{name}: {extract['key']!r} is not a JSON object")
        data.update({str(k): str(v) for k, v in values.items()})
    for item in spec.get("data", []):
        ref = item["remoteRef"]
        value = _secret_json(client, ref["key"], cache)
        prop = ref.get("property")
        if prop is not None:
            if not isinstance(value, dict) or prop not in value:
                raise ExternalSecretError(
                    f"{name}: data.{item['secretKey']}: {ref['key']!r} has no property {prop!r}"
                )
            value = value[prop]
        data[item["secretKey"]] = str(value)
    return data
