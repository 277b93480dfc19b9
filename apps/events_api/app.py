"""The events-api ASGI application: `create_app(settings)` wires pool, relay, routes, errors."""

from __future__ import annotations

import gc
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from psycopg import AsyncConnection
from psycopg_pool import AsyncConnectionPool

from apps.common.attributes import from_attributes
from apps.common.db import make_pool
from apps.common.logging import configure_logging
from apps.common.tracing import flush_tracing, setup_tracing
from apps.events_api import errors, server_limits
from apps.events_api.admission import AcceptBatcher
from apps.events_api.idempotency import Purger
from apps.events_api.keys import KeyCache
from apps.events_api.limits import limit_time
from apps.events_api.middleware import BodyGuardMiddleware, RequestContextMiddleware
from apps.events_api.outbox import OutboxRelay
from apps.events_api.routes import audit, console, events, ops, stream, tasks
from apps.events_api.settings import APP_NAME, ApiSettings
from apps.events_api.stream import HubSettings, StreamHub

log = logging.getLogger(__name__)


def hub_settings(settings: ApiSettings) -> HubSettings:
    return from_attributes(HubSettings, settings, prefix="stream_")


def freeze_startup_heap() -> None:
    """Move every object alive now (modules, routes, pydantic schemas: ~90,000) out of the
    cyclic garbage collector's view, once the app is built and before it serves.

    Why: a full collection otherwise walks all of them and took ~45 ms on the 2-core machine,
    stalling every in-flight request that long, a few times a minute under load: it was the
    p99 of `POST /api/v1/events`. After the freeze it walks only what requests allocate.
    Reference counting still frees these objects; only cycles among them are never collected,
    which is fine for objects that live as long as the process. Called by `serve` only (tests
    build many apps in one process).
    """
    gc.collect()
    gc.freeze()


def create_app_from_env() -> FastAPI:
    """The factory each `uvicorn --workers` process imports: settings and logging from the
    environment (worker processes are spawned, so nothing configured in the parent reaches them).
    """
    settings = ApiSettings()
    configure_logging(APP_NAME, settings.log_level)
    server_limits.configure(settings.head_limits)
    app = create_app(settings)
    freeze_startup_heap()
    return app


def create_app(settings: ApiSettings | None = None) -> FastAPI:
    settings = settings or ApiSettings()
    setup_tracing(APP_NAME, settings.otel_endpoint)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        # The pool opens without waiting for the database: the API starts (and reports
        # not-ready) during a database outage instead of crash-looping.
        # Autocommit: single statements (key lookup, rate admission) need no BEGIN/COMMIT;
        # multi-statement work opens an explicit transaction. No checkout probe: a connection
        # broken by a database restart fails one request (503) and is discarded.
        app.state.pool = make_pool(
            settings.db.conninfo,
            min_size=settings.db_pool_min,
            max_size=settings.db_pool_max,
            name=APP_NAME,
            check=None,
            kwargs={"autocommit": True},
        )
        # `POST /api/v1/events` is async end to end (see routes/events.py) and uses its own
        # pool of asyncio connections, with the same settings, so it never waits for a thread.
        app.state.async_pool = AsyncConnectionPool(
            settings.db.conninfo_async,
            connection_class=AsyncConnection,
            min_size=settings.db_pool_min,
            max_size=settings.db_pool_max,
            name=f"{APP_NAME}-async",
            open=False,
            timeout=5.0,
            reconnect_timeout=3600,
            kwargs={"autocommit": True},
        )
        await app.state.async_pool.open(wait=False)
        app.state.accept_batcher = AcceptBatcher(
            app.state.async_pool,
            settings.events_topic,
            clock=lambda: limit_time(app.state),  # a test may pin it (limits.limit_time)
        )
        app.state.stream_hub = StreamHub(
            app.state.async_pool, settings.db.conninfo_async, hub_settings(settings)
        ).start()
        app.state.relay = OutboxRelay(settings).start() if settings.relay_enabled else None
        purger = Purger(app.state.pool).start()
        log.info(
            "events-api started",
            extra={"database": settings.db.redacted(), "relay": settings.relay_enabled},
        )
        try:
            yield
        finally:
            purger.stop()
            # uvicorn has stopped taking requests and waited for the running ones; a flush
            # still in the database finishes before its pool closes.
            await app.state.accept_batcher.drain()
            await app.state.stream_hub.stop()
            if app.state.relay is not None:
                app.state.relay.stop(timeout_s=5.0)
            await app.state.async_pool.close()
            app.state.pool.close()
            log.info("events-api stopped")
            # uvicorn re-raises SIGTERM once this returns, and a re-raised signal skips the
            # SDK's exit-time flush: export the queued spans (the relay's included) now.
            flush_tracing()

    app = FastAPI(
        title="events-api",
        version="1.0.0",
        description="Accepts notification events and tasks; publishes them to Kafka through a "
        "transactional outbox.",
        lifespan=lifespan,
        default_response_class=errors.SafeJSONResponse,
        # FastAPI's built-in OpenTelemetry would add a second server span (ours, in
        # RequestContextMiddleware, carries the correlation id and continues `traceparent`)
        # plus a span per dependency, endpoint and serialization: ~5 spans and a third of the
        # CPU of an accepted event, for nothing the traces need.
        telemetry={"tracing": False, "metrics": False, "logs": False, "operation_spans": False},
    )
    app.state.settings = settings
    app.state.key_cache = KeyCache(settings.key_cache_seconds)
    app.state.relay = None
    errors.install(app)
    app.include_router(events.router)
    app.include_router(tasks.router)
    app.include_router(audit.router)
    app.include_router(ops.router)
    app.include_router(stream.router)
    console.install(app, settings.console_dir)
    # Added last = outermost: the request context wraps the body guard's early replies too.
    app.add_middleware(BodyGuardMiddleware, max_bytes=settings.max_body_bytes)
    app.add_middleware(RequestContextMiddleware)
    return app
