"""Reading ArgoCD's verdict on a rollout: are the Applications Synced and Healthy at a revision?

The client reads `GET /api/v1/applications?selector=<labels>` with `Authorization: Bearer
<token>` (ArgoCD's REST API, `assets/swagger.json` in argoproj/argo-cd: `v1alpha1ApplicationList`
of `v1alpha1Application`; `status.sync` is a `v1alpha1SyncStatus` {status, revision},
`status.health` a `v1alpha1HealthStatus` {status, message}, `status.operationState` a
`v1alpha1OperationState` {phase, message, syncResult.revision}). Health statuses are those of
ArgoCD's health assessment (docs/operator-manual/health.md): Healthy, Progressing, Degraded,
Suspended, Missing, Unknown; sync statuses: Synced, OutOfSync, Unknown.

`assess()` is pure: the same list of applications always gives the same verdict.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import httpx

FAILED_OPERATION_PHASES = frozenset({"Failed", "Error"})


@dataclass(frozen=True)
class AppState:
    """What ArgoCD says about one Application."""

    name: str
    sync_status: str
    health_status: str
    health_message: str
    revision: str
    operation_phase: str
    operation_message: str

    @classmethod
    def from_api(cls, item: Mapping[str, Any]) -> AppState:
        status = item.get("status") or {}
        sync = status.get("sync") or {}
        health = status.get("health") or {}
        operation = status.get("operationState") or {}
        return cls(
            name=str((item.get("metadata") or {}).get("name", "")),
            sync_status=str(sync.get("status") or "Unknown"),
            health_status=str(health.get("status") or "Unknown"),
            health_message=str(health.get("message") or ""),
            revision=str(sync.get("revision") or ""),
            operation_phase=str(operation.get("phase") or ""),
            operation_message=str(operation.get("message") or ""),
        )


@dataclass(frozen=True)
class Assessment:
    """ready: every app is done; failed: why the rollout cannot succeed (stop waiting)."""

    ready: bool
    failed: str | None
    waiting: tuple[str, ...]

    def describe(self) -> str:
        if self.failed:
            return self.failed
        return "all Synced and Healthy" if self.ready else "; ".join(self.waiting)


def assess(
    apps: Iterable[AppState],
    expected: Iterable[str],
    revision: str,
    reached: Callable[[str, str], bool] | None = None,
) -> Assessment:
    """The verdict for every Application listed, and the `expected` names, at `revision`.

    `reached(actual, wanted)` says whether an app at `actual` has the wanted commit (e.g. a later
    commit that contains it: another environment's promotion may have moved the branch); by
    default only the exact revision counts. An app that is not there yet, is still syncing, or is
    at another revision is waited for; one that is Degraded, or whose sync operation failed, at
    the wanted revision fails the rollout at once.
    """
    at = reached or (lambda actual, wanted: actual == wanted)
    by_name = {app.name: app for app in apps}
    waiting: list[str] = []
    for name in sorted(set(expected) | set(by_name)):
        app = by_name.get(name)
        if app is None:
            waiting.append(f"{name}: no such Application yet")
            continue
        if not app.revision or not at(app.revision, revision):
            waiting.append(f"{name}: at revision {app.revision[:12] or '?'}, want {revision[:12]}")
            continue
        if app.operation_phase in FAILED_OPERATION_PHASES:
            detail = app.operation_message or "no message"
            return Assessment(False, f"{name}: sync operation {app.operation_phase}: {detail}", ())
        if app.health_status == "Degraded":
            detail = app.health_message or "no message"
            return Assessment(False, f"{name}: Degraded at {revision[:12]}: {detail}", ())
        if app.sync_status != "Synced" or app.health_status != "Healthy":
            waiting.append(f"{name}: {app.sync_status}/{app.health_status}")
    return Assessment(not waiting, None, tuple(waiting))


class ArgoCdClient:
    """The two reads the rollout gate needs, over httpx."""

    def __init__(self, base_url: str, token: str, timeout_s: float = 15.0) -> None:
        self._http = httpx.Client(
            base_url=base_url.rstrip("/"),
            headers={"Authorization": f"Bearer {token}", "Accept": "application/json"},
            timeout=timeout_s,
        )

    def applications(self, selector: str) -> list[AppState]:
        response = self._http.get("/api/v1/applications", params={"selector": selector})
        response.raise_for_status()
        return [AppState.from_api(item) for item in response.json().get("items") or []]

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> ArgoCdClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
