"""Error responses: the client's fault is a 4xx with detail; an unavailable database is a 503.

No client input may produce a 500. Validation errors are re-rendered without echoing the
input (it may be large, secret, or not encodable as UTF-8), and every JSON body is rendered
ASCII-escaped so no string can break the response encoder.
"""

from __future__ import annotations

import json
import logging
from typing import Any

import psycopg
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from psycopg_pool import PoolTimeout
from starlette.exceptions import HTTPException

from apps.events_api import metrics
from apps.events_api.limits import LimitExceeded

log = logging.getLogger(__name__)

DB_RETRY_AFTER_S = 5


class SafeJSONResponse(JSONResponse):
    """JSON with non-ASCII escaped: lone surrogates in strings cannot fail the encoding."""

    def render(self, content: Any) -> bytes:
        return json.dumps(content, ensure_ascii=True, allow_nan=False, default=str).encode()


def _safe(value: Any) -> Any:
    if isinstance(value, str):
        return value.encode("utf-8", errors="replace").decode("utf-8")[:200]
    if isinstance(value, int | float | bool) or value is None:
        return value
    return _safe(str(value))


def field_errors(exc: RequestValidationError) -> list[dict[str, Any]]:
    return [
        {
            "loc": [_safe(part) for part in err.get("loc", ())],
            "msg": _safe(err.get("msg", "")),
            "type": _safe(err.get("type", "")),
        }
        for err in exc.errors()
    ]


def install(app: FastAPI) -> None:
    @app.exception_handler(RequestValidationError)
    async def validation_failed(request: Request, exc: RequestValidationError) -> JSONResponse:
        return SafeJSONResponse({"detail": field_errors(exc)}, status_code=422)

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, exc: HTTPException) -> JSONResponse:
        return SafeJSONResponse(
            {"detail": _safe(exc.detail)}, status_code=exc.status_code, headers=exc.headers
        )

    @app.exception_handler(LimitExceeded)
    async def limited(request: Request, exc: LimitExceeded) -> JSONResponse:
        metrics.LIMITED.labels(exc.which).inc()
        return SafeJSONResponse(
            {"detail": str(exc)},
            status_code=429,
            headers={"Retry-After": str(exc.retry_after_s)},
        )

    @app.exception_handler(PoolTimeout)
    @app.exception_handler(psycopg.OperationalError)
    @app.exception_handler(psycopg.InterfaceError)
    async def database_unavailable(request: Request, exc: Exception) -> JSONResponse:
        log.warning("database unavailable", extra={"error": f"{type(exc).__name__}: {exc}"})
        return SafeJSONResponse(
            {"detail": "database unavailable; retry later"},
            status_code=503,
            headers={"Retry-After": str(DB_RETRY_AFTER_S)},
        )

    @app.exception_handler(psycopg.DataError)
    async def data_rejected(request: Request, exc: psycopg.DataError) -> JSONResponse:
        # Input that passed validation but the database refused as a value (a safety net).
        log.warning("database rejected a value", extra={"error": str(exc)[:200]})
        return SafeJSONResponse({"detail": "a value is not acceptable"}, status_code=422)

    @app.exception_handler(Exception)
    async def unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.error("unhandled error", exc_info=exc)
        return SafeJSONResponse({"detail": "internal error"}, status_code=500)
