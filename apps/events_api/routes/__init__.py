"""HTTP routes of events-api, one module per resource."""

from __future__ import annotations

from typing import Any

from apps.events_api.schemas import Problem

# Documented on every authenticated route, so the OpenAPI document tells clients (and the
# property-based contract test) every status the route can answer with.
COMMON_RESPONSES: dict[int | str, dict[str, Any]] = {
    401: {"model": Problem, "description": "Missing or invalid API key."},
    403: {"model": Problem, "description": "The API key lacks the scope this route needs."},
    413: {"model": Problem, "description": "Body larger than the limit (64 KiB)."},
    415: {"model": Problem, "description": "Content-Type is not application/json."},
    429: {"model": Problem, "description": "Rate limit or monthly quota reached; see Retry-After."},
    503: {"model": Problem, "description": "Database unavailable; see Retry-After."},
}
