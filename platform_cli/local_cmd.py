"""`platform local`: the whole system on this machine, a demo burst, a report, a clean stop.

The work is in `platform_cli.local_run`; this module is the terminal side: progress while the
parts start, the report table, where to look, and stopping everything on Ctrl-C, on SIGTERM and at
the end of the demo (unless `--keep-running`).
"""

from __future__ import annotations

import signal
import time
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.table import Table

from platform_cli.progress import stepper

if TYPE_CHECKING:
    from platform_cli.local_run import Report

_LABELS = {
    "events_accepted": "events accepted (HTTP 202)",
    "tasks_created": "tasks created (HTTP 201)",
    "audit_rows": "audit rows (audit_log)",
    "notifications_delivered": "notifications delivered (webhook sink)",
    "reminders_delivered": "reminders fired, delivered (webhook sink)",
    "dead_letters": "dead letters (notifier.dlq + audit.dlq)",
    "archive_objects": "S3 archive objects",
    "archived_rows": "audit rows archived to S3",
}


def _raise_interrupt(_signum: int, _frame: FrameType | None) -> None:
    raise KeyboardInterrupt


def local_command(
    keep_running: Annotated[
        bool,
        typer.Option("--keep-running", help="Leave everything running after the demo (Ctrl-C)."),
    ] = False,
    events: Annotated[int, typer.Option(min=0, help="Events in the demo burst.")] = 24,
    tasks: Annotated[int, typer.Option(min=0, help="Tasks in the demo burst.")] = 8,
    reminders: Annotated[
        int, typer.Option(min=0, help="Tasks due in seconds whose reminder the demo waits for.")
    ] = 1,
    plan: Annotated[
        bool,
        typer.Option("--plan/--no-plan", help="Also summarise the offline plan of each stack."),
    ] = True,
    report_json: Annotated[
        Path | None, typer.Option("--report-json", help="Also write the report as JSON.")
    ] = None,
) -> None:
    """Run the platform locally: broker, PostgreSQL, AWS emulator, the four apps, a demo."""
    from platform_cli.local_run import LocalOptions, LocalRun, LocalRunError

    console = Console()
    started = time.monotonic()

    step = stepper(console)
    # Both signals end in the `finally` below, which stops everything. SIGINT is set explicitly:
    # a shell starts background jobs with it ignored, and Python keeps that.
    previous = signal.signal(signal.SIGTERM, _raise_interrupt)
    previous_int = signal.signal(signal.SIGINT, signal.default_int_handler)
    run = LocalRun(LocalOptions(events=events, tasks=tasks, reminders=reminders, plan=plan), step)
    exit_code = 0
    try:
        run.start()
        report = run.demo()
        _print_report(console, report, time.monotonic() - started)
        if report_json is not None:
            report_json.write_text(report.to_json())
        exit_code = 0 if report.complete else 1
        if keep_running:
            console.print("\nEverything keeps running. [bold]Ctrl-C[/bold] stops it all.")
            console.print(
                f"web console: {report.urls.get('web console', '-')}  sign in with the demo API "
                f"key (shown once, not stored anywhere):\n{run.demo_key}"
            )
            while True:
                run.check_children()  # an app that dies ends the run with its log tail
                time.sleep(1)
    except KeyboardInterrupt:
        console.print("\n[yellow]interrupted[/yellow]")
        exit_code = 130
    except LocalRunError as exc:
        console.print(f"[red]platform local failed:[/red] {exc}")
        exit_code = 1
    finally:
        with console.status("stopping every process started ..."):
            run.close()
        signal.signal(signal.SIGTERM, previous)
        signal.signal(signal.SIGINT, previous_int)
        left = list(run.alive())
        if left:
            console.print(f"[red]still running: {', '.join(c.name for c in left)}[/red]")
            exit_code = exit_code or 1
        else:
            console.print(f"stopped {len(run.children)} processes; nothing left running")
    raise typer.Exit(exit_code)


def _print_report(console: Console, report: Report, total_s: float) -> None:
    table = Table(title="demo report")
    table.add_column("what")
    table.add_column("count", justify="right")
    table.add_column("expected", justify="right")
    for key, label in _LABELS.items():
        got, want = getattr(report, key), report.expected.get(key)
        style = "green" if got == want else "red"
        table.add_row(label, f"[{style}]{got}[/{style}]", str(want))
    console.print(table)
    console.print(
        f"sent: {report.events_accepted} events and {report.tasks_created} tasks (some due in "
        f"seconds, with a reminder) over HTTP, "
        f"{report.poison_records} poison record straight to Kafka"
    )
    where = Table(title="where to look", show_header=False)
    for label, url in report.urls.items():
        where.add_row(label, url)
    where.add_row("logs", report.logs)
    console.print(where)
    if report.plan:
        plans = Table(title="offline plan (declared resources, not a diff against live state)")
        plans.add_column("stack")
        plans.add_column("resources", justify="right")
        plans.add_column("policy")
        for summary in report.plan:
            policy = summary.policy.removeprefix("policy: ").split(" (")[0]
            plans.add_row(summary.stack, str(summary.resources or "-"), policy)
        console.print(plans)
    verdict = "[green]complete[/green]" if report.complete else "[red]INCOMPLETE[/red]"
    console.print(f"demo {verdict}: started in {report.elapsed_s:.1f} s, whole run {total_s:.1f} s")


def register(app: typer.Typer) -> None:
    """Add `platform local` to the `platform` app."""
    app.command("local")(local_command)
