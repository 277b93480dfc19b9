"""ExternalSecrets the apps mount: the notifier's channel credentials.

The credentials never pass through git or Pulumi state. Operators put them in the env's secret
store (`infra.contracts.notifier_channels_secret_id`, one JSON property per key); External
Secrets copies exactly the keys the env's routes need into the `notifier-channels` Secret, and
fails the sync (the notifier cannot start) when one is missing.
"""

from __future__ import annotations

from infra.contracts import (
    NOTIFIER_CHANNEL_KEYS,
    NOTIFIER_CHANNELS_SECRET,
    notifier_channels_secret_id,
)
from infra.gitops.catalog import AppSpec
from infra.gitops.manifests.common import EnvContext, Manifest, metadata
from infra.platform.external_secrets import AWS_STORE_NAME, ESO_API_VERSION, KUBERNETES_STORE_NAME

REFRESH_INTERVAL = "1h"
"""A rotated credential reaches the Secret within the hour (pods read it at start)."""


def notifier_channels(spec: AppSpec, ctx: EnvContext, wave: int) -> Manifest:
    keys = [key for channel in spec.channels(ctx.env) for key in NOTIFIER_CHANNEL_KEYS[channel]]
    if ctx.cfg.flavour == "aws":
        # AWS flavour: Secrets Manager, through the controller's Pod Identity.
        store, remote_key = AWS_STORE_NAME, notifier_channels_secret_id(ctx.cfg.name_prefix)
    else:
        # Local flavour: a Secret of the same name in the store's source namespace.
        store, remote_key = KUBERNETES_STORE_NAME, NOTIFIER_CHANNELS_SECRET
    return {
        "apiVersion": ESO_API_VERSION,
        "kind": "ExternalSecret",
        "metadata": metadata(NOTIFIER_CHANNELS_SECRET, spec.name, wave=wave),
        "spec": {
            "refreshInterval": REFRESH_INTERVAL,
            "secretStoreRef": {"kind": "ClusterSecretStore", "name": store},
            "target": {
                "name": NOTIFIER_CHANNELS_SECRET,
                "creationPolicy": "Owner",
                "deletionPolicy": "Delete",
            },
            "data": [
                {"secretKey": key, "remoteRef": {"key": remote_key, "property": key}}
                for key in keys
            ],
        },
    }
