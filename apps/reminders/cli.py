"""`reminders run` (task changes -> schedule, and the scheduler) and `reminders migrate`."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer
from rich.console import Console

from apps.common.consumer_cli import ConsumerCommands, add_consumer_commands
from apps.reminders.settings import APP_NAME

MIGRATIONS = Path(__file__).parent / "migrations"

app = typer.Typer(
    help="Schedule task reminders from task changes and fire them on time (task.reminder.due)."
)
console = Console(stderr=True)


def _service_classes() -> tuple[Any, Any]:
    from apps.reminders.consumer import RemindersService
    from apps.reminders.settings import RemindersConfig

    return RemindersConfig, RemindersService


add_consumer_commands(
    app,
    ConsumerCommands(
        name=APP_NAME,
        migrations=MIGRATIONS,
        migrate_help="Apply the reminders app's pending schema migrations (idempotent).",
        run_help="Consume the tasks topic into the schedule and fire due reminders until SIGTERM.",
        load=_service_classes,
    ),
    console,
)


if __name__ == "__main__":
    app()
