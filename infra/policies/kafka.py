"""MSK client traffic: TLS only, and IAM authentication (no unauthenticated or plaintext access)."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from infra.policies.catalog import rule
from infra.policies.encryption import MSK_CLUSTER
from infra.policies.model import RuleContext
from infra.policies.values import get, is_false, is_true


@rule(
    "msk-client-tls-only",
    "MSK accepts only TLS from clients and encrypts broker-to-broker traffic.",
    types=[MSK_CLUSTER],
)
def msk_client_tls_only(
    resource_type: str, inputs: Mapping[str, Any], context: RuleContext
) -> Iterator[str]:
    in_transit = get(inputs, "encryptionInfo", "encryptionInTransit")
    client_broker = get(in_transit, "clientBroker")
    # Required explicitly rather than trusting the API default, so a reader can see it.
    if client_broker != "TLS":
        yield (
            f"MSK client traffic is {client_broker or 'not set'}, allowed: TLS only "
            "(set encryptionInfo.encryptionInTransit.clientBroker='TLS')"
        )
    if is_false(get(in_transit, "inCluster")):
        yield "MSK broker-to-broker traffic is plaintext: set encryptionInTransit.inCluster=true"


@rule(
    "msk-iam-auth",
    "MSK clients authenticate with IAM (SASL/IAM); unauthenticated access is off.",
    types=[MSK_CLUSTER],
)
def msk_iam_auth(
    resource_type: str, inputs: Mapping[str, Any], context: RuleContext
) -> Iterator[str]:
    auth = inputs.get("clientAuthentication")
    if not is_true(get(auth, "sasl", "iam")):
        yield "MSK IAM authentication is off: set clientAuthentication.sasl.iam=true"
    if is_true(get(auth, "unauthenticated")):
        yield "MSK allows unauthenticated clients: set clientAuthentication.unauthenticated=false"
