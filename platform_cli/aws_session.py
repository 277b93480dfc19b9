"""boto3 clients for `bootstrap`/`verify`, with the emulator endpoint override.

boto3 already honours `AWS_ENDPOINT_URL`; we read it too so that S3 uses path-style addressing
against an emulator (a bucket name cannot become a sub-domain of `127.0.0.1`) and so that the
commands can say which endpoint they talked to.
"""

from __future__ import annotations

import os
from typing import Any

import boto3
from botocore.config import Config

ENDPOINT_ENV = "AWS_ENDPOINT_URL"


def endpoint_override() -> str | None:
    """The emulator endpoint from `AWS_ENDPOINT_URL`, or None for real AWS."""
    return os.environ.get(ENDPOINT_ENV) or None


def client(service: str, region: str) -> Any:
    """A boto3 client for `service` in `region`, pointed at the emulator when one is set."""
    endpoint = endpoint_override()
    config = Config(
        # An emulator's 5xx means "not implemented", not "try again".
        retries={"max_attempts": 1 if endpoint else 3, "mode": "standard"},
        s3={"addressing_style": "path"} if endpoint else None,
    )
    # Typed as Any: boto3's stubs overload `client` per literal service name.
    session: Any = boto3.session.Session(region_name=region)
    return session.client(service, endpoint_url=endpoint, config=config)


def account_id(region: str) -> str:
    """The caller's account (emulators differ: LocalStack 000000000000, moto 123456789012)."""
    return str(client("sts", region).get_caller_identity()["Account"])
