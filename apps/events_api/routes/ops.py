"""Operational endpoints: liveness, readiness and Prometheus metrics."""

from __future__ import annotations

import socket

from fastapi import APIRouter, Request, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from pydantic import BaseModel

from apps.events_api.errors import SafeJSONResponse

router = APIRouter(tags=["operations"])


class Readiness(BaseModel):
    status: str
    checks: dict[str, bool]


@router.get("/healthz")
def healthz() -> dict[str, str]:
    """The process is alive (no dependency is checked: a restart would not fix them)."""
    return {"status": "ok"}


def _database_ok(request: Request) -> bool:
    try:
        with request.app.state.pool.connection(timeout=2) as conn:
            conn.execute("SELECT 1")
        return True
    except Exception:
        return False


def _kafka_reachable(bootstrap: list[str]) -> bool:
    for server in bootstrap:
        host, _, port = server.rpartition(":")
        try:
            with socket.create_connection((host.strip("[]"), int(port)), timeout=1):
                return True
        except (OSError, ValueError):
            continue
    return False


@router.get(
    "/readyz",
    response_model=Readiness,
    responses={503: {"model": Readiness, "description": "Not ready."}},
)
def readyz(request: Request) -> Response:
    """Ready when the database answers and Kafka is reachable or the outbox relay is healthy.

    A Kafka outage alone does not make the API unready: accepted events wait in the outbox.
    """
    relay = getattr(request.app.state, "relay", None)
    settings = request.app.state.settings
    checks = {"database": _database_ok(request)}
    checks["outbox_relay"] = bool(relay is not None and relay.healthy())
    checks["kafka"] = bool(
        (relay is not None and relay.kafka_ok()) or _kafka_reachable(settings.kafka.servers)
    )
    ready = checks["database"] and (checks["kafka"] or checks["outbox_relay"])
    body = Readiness(status="ready" if ready else "not ready", checks=checks)
    return SafeJSONResponse(body.model_dump(), status_code=200 if ready else 503)


@router.get("/metrics", include_in_schema=False)
def prometheus_metrics() -> Response:
    return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)
