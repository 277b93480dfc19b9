"""`notifier run` (the consumer) and `notifier migrate` (its schema)."""

from __future__ import annotations

import logging
import threading
from pathlib import Path

import typer
from rich.console import Console

from apps.common.db import DbSettings, migrate
from apps.common.logging import configure_logging
from apps.common.tracing import setup_tracing

MIGRATIONS = Path(__file__).parent / "migrations"
APP_NAME = "notifier"

app = typer.Typer(help="Deliver events and task changes to webhook and chat channels.")
console = Console(stderr=True)


def quiet_http_client_logs() -> None:
    # httpx logs every request URL at INFO, and a Telegram URL contains the bot token.
    for name in ("httpx", "httpcore"):
        logging.getLogger(name).setLevel(logging.WARNING)


@app.command("migrate")
def migrate_cmd() -> None:
    """Apply the notifier's pending schema migrations (idempotent)."""
    configure_logging(APP_NAME)
    applied = migrate(DbSettings().conninfo(), APP_NAME, MIGRATIONS)
    console.print(f"notifier: applied {applied or 'nothing (up to date)'}")


@app.command("run")
def run_cmd(
    apply_migrations: bool = typer.Option(
        False, "--migrate", help="Apply pending migrations before consuming."
    ),
) -> None:
    """Consume the events and tasks topics until SIGTERM."""
    from apps.common.consumer_loop import run_with_probes
    from apps.common.stop import stop_on_signals
    from apps.notifier.consumer import NotifierService
    from apps.notifier.settings import NotifierConfig

    config = NotifierConfig()
    configure_logging(APP_NAME, config.app.log_level)
    quiet_http_client_logs()
    setup_tracing(APP_NAME, config.app.otlp_endpoint)
    if apply_migrations:
        migrate(config.db.conninfo(), APP_NAME, MIGRATIONS)
    stop = stop_on_signals(threading.Event(), APP_NAME)
    run_with_probes(NotifierService(config, stop), config.app.port)


if __name__ == "__main__":
    app()
