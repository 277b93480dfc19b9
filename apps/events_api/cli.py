"""`events-api`: serve the API, run the outbox relay, apply migrations, manage API keys."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Annotated, Any

import psycopg
import typer
from rich.console import Console

from apps.common.db import migrate as run_migrations
from apps.common.logging import configure_logging
from apps.events_api.keys import DEFAULT_SCOPES, SCOPES
from apps.events_api.keys import create_key as store_key
from apps.events_api.keys import revoke_key as revoke_stored_key
from apps.events_api.settings import APP_NAME, ApiSettings

MIGRATIONS_DIR = Path(__file__).parent / "migrations"

app = typer.Typer(name=APP_NAME, help=__doc__, no_args_is_help=True, add_completion=False)
console = Console(stderr=True)


def apply_migrations(settings: ApiSettings) -> list[int]:
    return run_migrations(settings.db.conninfo(), APP_NAME, MIGRATIONS_DIR)


@app.command()
def migrate() -> None:
    """Apply pending schema migrations (idempotent; safe to run from several replicas)."""
    settings = ApiSettings()
    configure_logging(APP_NAME, settings.log_level)
    applied = apply_migrations(settings)
    console.print(f"applied {applied}" if applied else "schema is up to date")


@app.command("create-key")
def create_key(
    name: Annotated[str, typer.Option(help="A unique name for the key's owner.")],
    monthly_quota: Annotated[int, typer.Option(min=0, help="Events accepted per month.")],
    rate_per_minute: Annotated[int, typer.Option(min=0, help="Requests per minute.")],
    scope: Annotated[
        list[str] | None,
        typer.Option(
            help=f"What the key may do (repeat the option); allowed: {', '.join(SCOPES)}. "
            f"Default: {', '.join(DEFAULT_SCOPES)} (audit:read only when asked for)."
        ),
    ] = None,
    tenant: Annotated[
        str | None,
        typer.Option(
            help="Whose audit trail the key sees (keys of one tenant share it). "
            "Default: the key's name."
        ),
    ] = None,
) -> None:
    """Create an API key and print it once; only its SHA-256 digest is stored."""
    scopes = tuple(dict.fromkeys(scope)) if scope else DEFAULT_SCOPES
    unknown = [s for s in scopes if s not in SCOPES]
    if unknown:
        console.print(f"[red]--scope: unknown {unknown}; allowed: {', '.join(SCOPES)}[/red]")
        raise typer.Exit(2)
    if tenant is not None and not tenant.strip():
        console.print("[red]--tenant: empty; allowed: a non-empty name[/red]")
        raise typer.Exit(2)
    settings = ApiSettings()
    try:
        with psycopg.connect(settings.db.conninfo()) as conn:
            key, plaintext = store_key(
                conn, name, monthly_quota, rate_per_minute, scopes=scopes, tenant=tenant
            )
    except psycopg.errors.UniqueViolation:
        console.print(f"[red]a key named {name!r} already exists[/red]")
        raise typer.Exit(1) from None
    console.print(
        f"created key {key.name!r} ({key.id}, tenant {key.tenant!r}, scopes "
        f"{', '.join(sorted(key.scopes))}); store it now, it is not shown again:"
    )
    typer.echo(plaintext)


@app.command("revoke-key")
def revoke_key(name: Annotated[str, typer.Option(help="The key's name.")]) -> None:
    """Revoke an API key by name."""
    settings = ApiSettings()
    with psycopg.connect(settings.db.conninfo()) as conn:
        revoked = revoke_stored_key(conn, name)
    console.print("revoked" if revoked else f"[yellow]no active key named {name!r}[/yellow]")
    raise typer.Exit(0 if revoked else 1)


@app.command()
def serve(
    host: Annotated[str | None, typer.Option(help="Bind address (EVENTS_API_HOST).")] = None,
    port: Annotated[int | None, typer.Option(help="Port (EVENTS_API_PORT or PORT).")] = None,
    migrate_first: Annotated[bool, typer.Option(help="Apply migrations before serving.")] = False,
) -> None:
    """Serve the HTTP API (with the outbox relay unless OUTBOX_RELAY_ENABLED=false)."""
    import uvicorn

    from apps.events_api import server_limits
    from apps.events_api.app import create_app, freeze_startup_heap

    settings = ApiSettings()
    configure_logging(APP_NAME, settings.log_level)
    if migrate_first:
        apply_migrations(settings)
    server_limits.configure(settings.head_limits)
    options: dict[str, Any] = {
        "host": host or settings.host,
        "port": port or settings.port,
        "log_config": None,  # keep our JSON logging
        "access_log": False,  # the latency histogram and our own logs cover requests
        "timeout_graceful_shutdown": 8,
        # Bounded request heads (431 / 408); idle keep-alive connections close after 5 s.
        "http": server_limits.BoundedHttpToolsProtocol,
        "timeout_keep_alive": 5,
    }
    if settings.workers > 1:
        # Several processes on one socket (one core each); each runs its own pools and relay.
        # In Kubernetes prefer replicas: each worker has its own /metrics registry.
        uvicorn.run(
            "apps.events_api.app:create_app_from_env",
            factory=True,
            workers=settings.workers,
            **options,
        )
    else:
        api = create_app(settings)
        freeze_startup_heap()
        uvicorn.run(api, **options)


@app.command()
def relay() -> None:
    """Run only the outbox relay (e.g. when the API replicas run with the relay disabled)."""
    from apps.common.stop import stop_on_signals
    from apps.events_api.outbox import OutboxRelay

    settings = ApiSettings()
    configure_logging(APP_NAME, settings.log_level)
    stop = stop_on_signals(threading.Event(), APP_NAME)
    outbox_relay = OutboxRelay(settings)
    try:
        outbox_relay.run(stop)
    finally:
        outbox_relay.stop()


if __name__ == "__main__":
    app()
