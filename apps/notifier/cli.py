"""`notifier run` (the consumer) and `notifier migrate` (its schema)."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import typer
from rich.console import Console

from apps.common.consumer_cli import ConsumerCommands, add_consumer_commands

MIGRATIONS = Path(__file__).parent / "migrations"
APP_NAME = "notifier"

app = typer.Typer(help="Deliver events and task changes to webhook and chat channels.")
console = Console(stderr=True)


def quiet_http_client_logs() -> None:
    # httpx logs every request URL at INFO, and a Telegram URL contains the bot token.
    for name in ("httpx", "httpcore"):
        logging.getLogger(name).setLevel(logging.WARNING)


def _service_classes() -> tuple[Any, Any]:
    from apps.notifier.consumer import NotifierService
    from apps.notifier.settings import NotifierConfig

    return NotifierConfig, NotifierService


add_consumer_commands(
    app,
    ConsumerCommands(
        name=APP_NAME,
        migrations=MIGRATIONS,
        migrate_help="Apply the notifier's pending schema migrations (idempotent).",
        run_help="Consume the events and tasks topics until SIGTERM.",
        load=_service_classes,
        before_run=quiet_http_client_logs,
    ),
    console,
)


if __name__ == "__main__":
    app()
