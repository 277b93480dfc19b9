"""A local HTTP server that answers as ArgoCD's API server does, for the rollout gate's tests.

No ArgoCD can run here, so this stand-in serves the one read the gate makes,
`GET /api/v1/applications?selector=<labels>`, with the response shape of ArgoCD's own API
description (argoproj/argo-cd `assets/swagger.json`: 200 -> `v1alpha1ApplicationList`
{metadata: v1ListMeta, items: [v1alpha1Application]}; an Application's `status.sync` is a
`v1alpha1SyncStatus` {status, revision, comparedTo}, `status.health` a `v1alpha1HealthStatus`
{status, message}, `status.operationState` a `v1alpha1OperationState` {phase, message,
startedAt, finishedAt, syncResult: {revision}}). Authentication is `Authorization: Bearer
<token>` (docs/developer-guide/api-docs.md); a wrong token gets 401 with the gRPC-gateway error
body ArgoCD returns ({error, code: 16, message}). Health values are ArgoCD's
(docs/operator-manual/health.md): Healthy, Progressing, Degraded, Suspended, Missing, Unknown.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from typing import Any
from urllib.parse import parse_qs, urlparse

from tests.conftest import serving

REPO_URL = "https://github.com/example-org/event-platform.git"


def application(
    name: str,
    env: str,
    revision: str,
    sync: str = "Synced",
    health: str = "Healthy",
    health_message: str = "",
    phase: str = "Succeeded",
    operation_message: str = "successfully synced (all tasks run)",
) -> dict[str, Any]:
    """One `v1alpha1Application` as the list endpoint returns it (fields the gate reads, and the
    neighbours that make it realistic)."""
    health_block: dict[str, Any] = {"status": health}
    if health_message:
        health_block["message"] = health_message
    source = {"repoURL": REPO_URL, "path": f"gitops/{env}/{name}", "targetRevision": "main"}
    return {
        "metadata": {
            "name": name,
            "namespace": "argocd",
            "labels": {
                "app.kubernetes.io/managed-by": "platform-gitops",
                "app.kubernetes.io/part-of": "event-platform",
            },
            "resourceVersion": "48213",
        },
        "spec": {
            "project": "platform-apps",
            "source": source,
            "destination": {"server": "https://kubernetes.default.svc", "namespace": "apps"},
        },
        "status": {
            "sync": {
                "status": sync,
                "revision": revision,
                "comparedTo": {"source": source, "destination": {"namespace": "apps"}},
            },
            "health": health_block,
            "operationState": {
                "phase": phase,
                "message": operation_message,
                "startedAt": "2026-01-01T10:00:00Z",
                "finishedAt": "2026-01-01T10:00:40Z",
                "syncResult": {"revision": revision, "source": source},
            },
            "reconciledAt": "2026-01-01T10:00:41Z",
        },
    }


@dataclass
class ArgoCdStandIn:
    """`answer(n)` gives the items of the n-th list request (0-based)."""

    token: str
    answer: Callable[[int], list[dict[str, Any]]]
    url: str = ""
    requests: list[dict[str, Any]] = field(default_factory=list)


@contextmanager
def argocd_standin(
    token: str, answer: Callable[[int], list[dict[str, Any]]]
) -> Iterator[ArgoCdStandIn]:
    state = ArgoCdStandIn(token, answer)

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            url = urlparse(self.path)
            query = parse_qs(url.query)
            state.requests.append({"path": url.path, "query": query})
            if self.headers.get("Authorization") != f"Bearer {state.token}":
                self._send(
                    401,
                    {
                        "error": "invalid session: token is invalid",
                        "code": 16,
                        "message": "invalid session: token is invalid",
                    },
                )
                return
            if url.path != "/api/v1/applications":
                self._send(404, {"error": "Not Found", "code": 5, "message": "Not Found"})
                return
            items = state.answer(len(state.requests) - 1)
            selector = query.get("selector", [""])[0]
            if selector:
                key, _, value = selector.partition("=")
                items = [i for i in items if i["metadata"]["labels"].get(key) == value]
            self._send(200, {"metadata": {"resourceVersion": "48213"}, "items": items})

        def _send(self, status: int, body: dict[str, Any]) -> None:
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args: object) -> None:
            pass

    with serving(Handler) as server:
        state.url = f"http://127.0.0.1:{server.server_address[1]}"
        yield state
