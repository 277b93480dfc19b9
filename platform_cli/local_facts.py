"""The facts channel for runs without a cluster: `platform local`, compose.yaml, the bench and
the tests.

The values come from the parts started for the run (or from the compose services); turning
them into environment variables is `infra.contracts.app_environment`, the function the deployed
`FactsChannel` uses. So a local app gets the same DB_* facts plus DB_USER/DB_PASSWORD as a
deployed pod, and, as in every deployed env, one database shared by all the apps.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from urllib.parse import quote

from infra.contracts import DbSecretKey, Fact, app_environment

LOCAL_ENVIRONMENT = "local"
"""`PLATFORM_ENVIRONMENT` of every run on this machine."""
LOCAL_REGION = "us-east-1"
"""The region the local AWS emulator serves."""
LOCAL_STACK = "localstack"
"""The stack whose config local runs mirror (the local flavour)."""


@cache
def local_database_name() -> str:
    """The one database of the local flavour's stack (`database.database_name`)."""
    from infra.config import load_stack_file

    return load_stack_file(LOCAL_STACK).database.database_name


@dataclass(frozen=True)
class Database:
    """Where a database is and who logs in: the DB_* facts and the `platform-db` keys."""

    host: str
    port: int
    name: str
    user: str
    password: str = ""

    @classmethod
    def from_url(cls, url: str) -> Database:
        """Parse a libpq URL (what the embedded server and the tests hand around)."""
        from psycopg.conninfo import conninfo_to_dict

        info = conninfo_to_dict(url)
        return cls(
            host=str(info.get("host", "127.0.0.1")),
            port=int(str(info.get("port", 5432))),
            name=str(info.get("dbname", "postgres")),
            user=str(info.get("user", "postgres")),
            password=str(info.get("password", "")),
        )

    @property
    def url(self) -> str:
        """A libpq URL, for tooling and tests that connect directly."""
        password = f":{quote(self.password, safe='')}" if self.password else ""
        auth = quote(self.user, safe="") + password
        return f"postgresql://{auth}@{self.host}:{self.port}/{quote(self.name, safe='')}"

    def with_name(self, name: str) -> Database:
        return Database(self.host, self.port, name, self.user, self.password)


def database_environment(database: Database) -> dict[str, str]:
    """Only the database part of the channel: DB_HOST, DB_PORT, DB_NAME, DB_USER, DB_PASSWORD."""
    return app_environment(
        {
            Fact.DB_HOST: database.host,
            Fact.DB_PORT: str(database.port),
            Fact.DB_NAME: database.name,
        },
        {DbSecretKey.USER: database.user, DbSecretKey.PASSWORD: database.password},
        complete=False,
    )


def local_app_environment(
    *,
    kafka_bootstrap: str,
    database: Database,
    archive_bucket: str = "",
    otlp_endpoint: str = "",
    environment: str = LOCAL_ENVIRONMENT,
    region: str = LOCAL_REGION,
) -> dict[str, str]:
    """Every fact and both credentials, for apps on this machine (plaintext Kafka; no
    tracing backend unless `otlp_endpoint`; no DB secret to reference: the credentials are
    handed over directly, as External Secrets hands them to a pod)."""
    return app_environment(
        {
            Fact.ENVIRONMENT: environment,
            Fact.AWS_REGION: region,
            Fact.KAFKA_BOOTSTRAP_SERVERS: kafka_bootstrap,
            Fact.KAFKA_AUTH_MODE: "plaintext",
            Fact.DB_HOST: database.host,
            Fact.DB_PORT: str(database.port),
            Fact.DB_NAME: database.name,
            Fact.DB_SECRET_REF: "",
            # A local PostgreSQL has no RDS certificate: TLS when offered, as libpq's default.
            Fact.DB_SSLMODE: "prefer",
            Fact.OTEL_EXPORTER_OTLP_ENDPOINT: otlp_endpoint,
            Fact.AUDIT_ARCHIVE_BUCKET: archive_bucket,
        },
        {DbSecretKey.USER: database.user, DbSecretKey.PASSWORD: database.password},
    )
