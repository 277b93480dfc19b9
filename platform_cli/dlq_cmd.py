"""`platform dlq replay`: republish dead letters to their original topic (see dlq_replay.py).

The broker comes from the facts channel's variables (`KAFKA_BOOTSTRAP_SERVERS`,
`KAFKA_AUTH_MODE`, `AWS_REGION`), the notifier's database (for re-arming its dead deliveries)
from the DB_* variables, as the apps read them.
"""

from __future__ import annotations

import uuid
from collections import Counter
from datetime import UTC, datetime
from typing import TYPE_CHECKING

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from apps.common.envelope import EnvelopeErrorReason
from infra.contracts import TOPICS

if TYPE_CHECKING:
    from apps.common.db import DbSettings
    from platform_cli.dlq_replay import ReplayPlan

DLQ_TOPICS = tuple(t.name for t in TOPICS if t.name.endswith(".dlq"))
MAX_TABLE_ROWS = 200

_ACTION_STYLE = {
    "replay": "green",
    "not selected": "dim",
    "duplicate": "dim",
    "no original topic": "yellow",
    "original topic missing": "red",
}

dlq_app = typer.Typer(
    help="Dead-letter topics: replay to their original topic.", no_args_is_help=True
)


def _known_reasons() -> tuple[str, ...]:
    from typing import get_args

    from apps.notifier.redrive import DELIVERY_REASONS

    return (*get_args(EnvelopeErrorReason), *DELIVERY_REASONS)


def _parse_since(value: str | None) -> datetime | None:
    if value is None:
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise typer.BadParameter(
            f"{value!r} is not an ISO-8601 time (e.g. 2026-03-05T10:00:00Z)", param_hint="--since"
        ) from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _parse_ids(value: str | None) -> frozenset[str] | None:
    if value is None:
        return None
    ids = set()
    for part in (p.strip() for p in value.split(",")):
        if not part:
            continue
        try:
            ids.add(str(uuid.UUID(part)))
        except ValueError:
            raise typer.BadParameter(
                f"{part!r} is not an event id; allowed: comma-separated envelope UUIDs",
                param_hint="--ids",
            ) from None
    if not ids:
        raise typer.BadParameter(
            "empty; allowed: comma-separated envelope UUIDs", param_hint="--ids"
        )
    return frozenset(ids)


def _parse_reasons(values: list[str] | None) -> frozenset[str] | None:
    if not values:
        return None
    known = _known_reasons()
    unknown = sorted(set(values) - set(known))
    if unknown:
        raise typer.BadParameter(
            f"{', '.join(unknown)}; allowed: {', '.join(known)}", param_hint="--reason"
        )
    return frozenset(values)


def _print_plan(console: Console, plan: ReplayPlan) -> None:
    table = Table(title=f"dead letters in {plan.topic}")
    for column in ("dead letter", "dead-lettered at", "reason", "event id", "original", "action"):
        table.add_column(column)
    for item in plan.items[:MAX_TABLE_ROWS]:
        letter = item.letter
        style = _ACTION_STYLE[item.action.value]
        table.add_row(
            f"{letter.partition}/{letter.offset}",
            letter.dead_lettered_at.isoformat(timespec="seconds"),
            letter.reason or "?",
            letter.event_id or "-",
            letter.origin,
            f"[{style}]{item.action.value}[/{style}]",
        )
    console.print(table)
    if len(plan.items) > MAX_TABLE_ROWS:
        more = Counter(p.action.value for p in plan.items[MAX_TABLE_ROWS:])
        console.print(
            f"... and {len(plan.items) - MAX_TABLE_ROWS} more: "
            + ", ".join(f"{n} {action}" for action, n in sorted(more.items())),
            soft_wrap=True,
        )
    counts = plan.counts()
    console.print(
        f"read {len(plan.items)} dead letter(s): {counts['replay']} to replay, "
        f"{counts['not selected']} not selected, {counts['duplicate']} duplicate(s), "
        f"{counts['no original topic']} without an original topic, "
        f"{counts['original topic missing']} whose original topic is missing; "
        f"{plan.newer_skipped} newer than this run left for the next",
        soft_wrap=True,
        highlight=False,
    )
    targets = Counter(d.original_topic for d in plan.to_replay)
    if targets:
        console.print(
            "to: " + ", ".join(f"{topic} ({n})" for topic, n in sorted(targets.items())),
            soft_wrap=True,
            highlight=False,
        )


@dlq_app.command("replay")
def replay_command(
    topic: str = typer.Option(
        ..., "--topic", help=f"Dead-letter topic to read; the platform's: {', '.join(DLQ_TOPICS)}."
    ),
    since: str | None = typer.Option(
        None, "--since", help="Only dead letters written at or after (ISO-8601, UTC if naive)."
    ),
    ids: str | None = typer.Option(
        None, "--ids", help="Only these event ids (comma-separated envelope UUIDs)."
    ),
    reasons: list[str] | None = typer.Option(  # noqa: B008 - typer reads the default here
        None, "--reason", help="Only this dlq.reason (repeatable)."
    ),
    dry_run: bool = typer.Option(
        False, "--dry-run", help="Show what would be replayed; publish and change nothing."
    ),
    rearm: bool = typer.Option(
        True,
        "--rearm/--no-rearm",
        help="Re-arm the notifier's dead deliveries of replayed delivery failures (needs its "
        "database: the DB_* variables); without it the notifier skips them as done.",
    ),
    read_timeout: float = typer.Option(
        120.0, "--read-timeout", min=1.0, help="Seconds allowed to read the topic to its end."
    ),
) -> None:
    """Republish dead letters to their original topic (from the dlq.* headers), key and value
    unchanged. Safe to run twice: the consumers dedupe by event id."""
    from apps.common.db import DbSettings
    from apps.common.kafka import KafkaSettings
    from apps.notifier.redrive import DELIVERY_REASONS
    from platform_cli.dlq_replay import ReplayError, Selection, build_plan, publish, replay_producer

    console = Console(emoji=False)
    selection = Selection(_parse_since(since), _parse_ids(ids), _parse_reasons(reasons))
    settings = KafkaSettings()
    from kafka.errors import KafkaError

    try:
        with console.status(f"reading {topic} from {settings.bootstrap_servers}"):
            plan = build_plan(settings, topic, selection, timeout_s=read_timeout)
    except ReplayError as exc:
        console.print(f"[red]{escape(str(exc))}[/red]", soft_wrap=True)
        raise typer.Exit(2 if str(exc).startswith("--topic") else 1) from None
    except KafkaError as exc:
        console.print(
            f"[red]cannot read {escape(topic)} from {escape(settings.bootstrap_servers)} "
            f"(KAFKA_BOOTSTRAP_SERVERS): {escape(repr(exc))}[/red]",
            soft_wrap=True,
        )
        raise typer.Exit(1) from None
    _print_plan(console, plan)

    rearm_ids = plan.rearm_ids(DELIVERY_REASONS) if rearm else []
    if dry_run:
        if rearm_ids:
            console.print(
                f"would re-arm the dead notifier deliveries of {len(rearm_ids)} event(s): "
                f"{_count_dead(DbSettings(), rearm_ids)}",
                soft_wrap=True,
                highlight=False,
            )
        console.print("dry run: nothing published, nothing changed", highlight=False)
        return
    if not plan.to_replay:
        console.print("nothing to replay", highlight=False)
        return

    rearmed = 0
    if rearm_ids:
        rearmed = _rearm(console, DbSettings(), rearm_ids)
    producer = replay_producer(settings)
    try:
        result = publish(producer, plan)
    finally:
        producer.close(timeout=10)
    console.print(
        f"replayed {result.published} of {len(plan.to_replay)} dead letter(s); "
        f"re-armed {rearmed} dead notifier deliveries",
        soft_wrap=True,
        highlight=False,
    )
    for letter, error in result.failed:
        console.print(
            f"[red]failed {letter.partition}/{letter.offset} -> {letter.original_topic}: "
            f"{escape(error)}[/red]",
            soft_wrap=True,
        )
    if result.failed:
        console.print("Rerun to retry the failed ones; the rest is deduped by the consumers.")
        raise typer.Exit(1)


def _count_dead(db: DbSettings, event_ids: list[uuid.UUID]) -> str:
    import psycopg

    from apps.notifier.redrive import count_dead

    try:
        with psycopg.connect(db.conninfo(), autocommit=True) as conn:
            return f"{count_dead(conn, event_ids)} dead deliveries"
    except psycopg.Error as exc:
        return f"unknown (database {db.redacted()} not reachable: {type(exc).__name__})"


def _rearm(console: Console, db: DbSettings, event_ids: list[uuid.UUID]) -> int:
    import psycopg

    from apps.notifier.redrive import rearm_dead

    try:
        with psycopg.connect(db.conninfo(), autocommit=True) as conn:
            return rearm_dead(conn, event_ids)
    except psycopg.Error as exc:
        console.print(
            f"[red]cannot re-arm the notifier's dead deliveries on {db.redacted()}: "
            f"{escape(str(exc).strip())}[/red]\nNothing was published. Point the DB_* variables "
            "at the notifier's database, or pass --no-rearm to replay without it "
            "(the notifier then skips the deliveries it recorded as dead).",
            soft_wrap=True,
        )
        raise typer.Exit(1) from None


def register(app: typer.Typer) -> None:
    """Add `dlq` (with `replay`) to the `platform` app."""
    app.add_typer(dlq_app, name="dlq")
