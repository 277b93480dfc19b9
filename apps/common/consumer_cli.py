"""The `migrate` and `run` commands every consumer app (audit, notifier, reminders) offers.

They differ only in the app's name, its migrations folder, their help text and which config and
service classes `run` builds, so the commands are written once here and each app's `cli.py`
declares a `ConsumerCommands`.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

import typer
from rich.console import Console

from apps.common.db import DbSettings, migrate
from apps.common.logging import configure_logging


class _ProcessSettings(Protocol):
    @property
    def log_level(self) -> str: ...

    @property
    def otlp_endpoint(self) -> str | None: ...

    @property
    def port(self) -> int: ...


class ConsumerConfig(Protocol):
    """What `run` reads from an app's config object (e.g. `AuditConfig`)."""

    @property
    def app(self) -> _ProcessSettings: ...

    @property
    def db(self) -> DbSettings: ...


if TYPE_CHECKING:
    from apps.common.consumer_loop import Service

    ServiceClasses = tuple[Callable[[], ConsumerConfig], Callable[..., Service]]
    """The app's config class and its service class, called as `service(config, stop)`."""


@dataclass(frozen=True)
class ConsumerCommands:
    """How one consumer app's `migrate` and `run` differ from the others'."""

    name: str
    migrations: Path
    migrate_help: str
    run_help: str
    load: Callable[[], ServiceClasses]
    """Imports the config and service classes; called by `run` only, so `--help` and `migrate`
    do not import the Kafka client, the handler and its dependencies."""
    before_run: Callable[[], None] | None = None
    """Called once logging is configured, before tracing and the service start."""


def add_consumer_commands(app: typer.Typer, spec: ConsumerCommands, console: Console) -> None:
    """Register `migrate` and `run` on `app`; `console` is where `migrate` reports."""

    @app.command("migrate", help=spec.migrate_help)
    def migrate_cmd() -> None:
        configure_logging(spec.name)
        applied = migrate(DbSettings().conninfo(), spec.name, spec.migrations)
        console.print(f"{spec.name}: applied {applied or 'nothing (up to date)'}")

    @app.command("run", help=spec.run_help)
    def run_cmd(
        apply_migrations: bool = typer.Option(
            False, "--migrate", help="Apply pending migrations before consuming."
        ),
    ) -> None:
        from apps.common.consumer_loop import run_with_probes
        from apps.common.stop import stop_on_signals
        from apps.common.tracing import setup_tracing

        config_class, service_class = spec.load()
        config = config_class()
        configure_logging(spec.name, config.app.log_level)
        if spec.before_run is not None:
            spec.before_run()
        setup_tracing(spec.name, config.app.otlp_endpoint)
        if apply_migrations:
            migrate(config.db.conninfo(), spec.name, spec.migrations)
        stop = stop_on_signals(threading.Event(), spec.name)
        run_with_probes(service_class(config, stop), config.app.port)
