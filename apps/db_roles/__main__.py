"""`python -m apps.db_roles {ensure,rotate}`: the apps' database roles and credentials.

Runs as the db-roles Job (PreSync, before the apps' migrations) with its own Pod Identity role:
the only workload that may read the RDS-managed master secret (`DB_SECRET_REF`) and write the
apps' credential secrets (`DB_ROLES_SECRETS`: JSON app package -> Secrets Manager secret id).
`ensure` creates or repairs every app's roles and publishes missing credentials; `rotate`
gives one app (or all) new credentials on its other login role.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from typing import Any

import psycopg

from apps.common.db import DbSettings
from apps.db_roles import roles

SECRETS_ENV = "DB_ROLES_SECRETS"

log = logging.getLogger("apps.db_roles")


class SecretStore:
    """The apps' credential secrets in Secrets Manager (values JSON username/password)."""

    def __init__(self, region: str | None, client: Any | None = None) -> None:
        if client is None:
            import boto3

            client = boto3.client("secretsmanager", region_name=region)
        self._client = client

    def read(self, secret_id: str) -> roles.Credentials | None:
        try:
            value = self._client.get_secret_value(SecretId=secret_id)["SecretString"]
        except self._client.exceptions.ResourceNotFoundException:
            return None  # declared by Pulumi without a value: nothing published yet
        document = json.loads(value)
        return roles.Credentials(document["username"], document["password"])

    def publish(self, secret_id: str, credentials: roles.Credentials) -> None:
        value = {"username": credentials.username, "password": credentials.password}
        self._client.put_secret_value(SecretId=secret_id, SecretString=json.dumps(value))


def run(verb: str, only: str | None, store: SecretStore, settings: DbSettings) -> int:
    raw = os.environ.get(SECRETS_ENV)
    if not raw:
        log.error("%s is not set (JSON: app package -> secret id)", SECRETS_ENV)
        return 2
    targets: dict[str, str] = json.loads(raw)
    if only is not None and only not in targets:
        log.error("--app %r; allowed: %s", only, ", ".join(sorted(targets)))
        return 2
    with psycopg.connect(settings.conninfo(), autocommit=True) as conn:
        for owner, secret_id in sorted(targets.items()):
            if only is not None and owner != only:
                continue
            current = store.read(secret_id)
            publish = lambda c, s=secret_id: store.publish(s, c)  # noqa: E731
            if verb == "ensure":
                creds = roles.provision(conn, owner, settings.name, current, publish)
            else:
                if current is None:
                    creds = roles.provision(conn, owner, settings.name, None, publish)
                else:
                    roles.ensure_roles(conn, owner, settings.name)
                    creds = roles.rotate(conn, owner, current, publish)
            log.info("database role ready", extra={"app": owner, "login": creds.username})
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m apps.db_roles",
        description="Create, repair or rotate the apps' own database roles and credentials "
        f"(${SECRETS_ENV}), connecting as the master user from $DB_SECRET_REF.",
    )
    parser.add_argument("verb", choices=("ensure", "rotate"))
    parser.add_argument("--app", help="only this app package (default: every app)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=os.environ.get("LOG_LEVEL", "INFO"), format="%(message)s")
    # The admin connection uses the master secret: DB_SECRET_REF, not an app's own secret.
    settings = DbSettings(DB_CREDENTIALS_SECRET=os.environ.get("DB_SECRET_REF") or None)
    try:
        return run(args.verb, args.app, SecretStore(settings.aws_region), settings)
    except (psycopg.Error, ValueError, KeyError) as exc:
        log.error("db-roles %s: %s", args.verb, exc)
        return 1


if __name__ == "__main__":
    sys.exit(main())
