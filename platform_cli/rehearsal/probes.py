"""HTTP probes as the kubelet runs them, from a container's declared `startupProbe` and
`readinessProbe` (podman turns probes into curl health checks, and the images have no curl).

Kubelet semantics kept here: a probe succeeds on a 2xx/3xx answer within `timeoutSeconds`; the
startup probe runs every `periodSeconds` and gives up after `failureThreshold` consecutive
failures; readiness probes start once the startup probe has succeeded. Named ports resolve
through the container's `ports`.
"""

from __future__ import annotations

import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

Manifest = dict[str, Any]


class ProbeError(RuntimeError):
    """A container did not pass its probes within their declared timing."""


@dataclass(frozen=True)
class HttpProbe:
    path: str
    port: int
    period_s: float
    timeout_s: float
    failure_threshold: int
    initial_delay_s: float = 0.0

    @property
    def window_s(self) -> float:
        """The longest a probe may keep failing before the kubelet gives up on it."""
        return self.initial_delay_s + self.period_s * self.failure_threshold

    def passes(self, host: str) -> bool:
        url = f"http://{host}:{self.port}{self.path}"
        try:
            with urllib.request.urlopen(url, timeout=self.timeout_s) as response:
                return bool(200 <= response.status < 400)
        except (urllib.error.URLError, OSError):
            return False


def http_probe(container: Manifest, kind: str) -> HttpProbe | None:
    """The container's `<kind>Probe` (startup, readiness, liveness), or None if not declared."""
    probe = container.get(f"{kind}Probe")
    if probe is None:
        return None
    http = probe.get("httpGet")
    if http is None:
        raise ProbeError(f"{container['name']}: {kind}Probe is not httpGet; only httpGet is run")
    port = http["port"]
    if isinstance(port, str):
        named = {p.get("name"): p["containerPort"] for p in container.get("ports", [])}
        if port not in named:
            raise ProbeError(f"{container['name']}: {kind}Probe names unknown port {port!r}")
        port = named[port]
    return HttpProbe(
        path=http.get("path", "/"),
        port=int(port),
        # Kubernetes defaults when a field is omitted.
        period_s=float(probe.get("periodSeconds", 10)),
        timeout_s=float(probe.get("timeoutSeconds", 1)),
        failure_threshold=int(probe.get("failureThreshold", 3)),
        initial_delay_s=float(probe.get("initialDelaySeconds", 0)),
    )


@dataclass(frozen=True)
class Readiness:
    seconds: float
    budget_s: float


def _run(probe: HttpProbe, host: str, alive: Callable[[], bool], started: float) -> None:
    time.sleep(probe.initial_delay_s)
    failures = 0
    while True:
        if not alive():
            raise ProbeError("the container exited before its probe passed")
        attempt = time.monotonic()
        if probe.passes(host):
            return
        failures += 1
        if failures >= probe.failure_threshold:
            raise ProbeError(
                f"{probe.path} on port {probe.port} failed {failures} times "
                f"(every {probe.period_s:.0f} s) after {time.monotonic() - started:.1f} s"
            )
        time.sleep(max(0.0, probe.period_s - (time.monotonic() - attempt)))


def wait_ready(container: Manifest, host: str, alive: Callable[[], bool]) -> Readiness:
    """Run the startup probe, then the readiness probe, as the kubelet would; raise ProbeError
    when either gives up. The budget is both windows added up."""
    started = time.monotonic()
    startup = http_probe(container, "startup")
    readiness = http_probe(container, "readiness")
    if readiness is None:
        raise ProbeError(f"{container['name']}: no readinessProbe declared")
    budget = readiness.window_s + (startup.window_s if startup else 0.0)
    if startup is not None:
        _run(startup, host, alive, started)
    _run(readiness, host, alive, started)
    return Readiness(seconds=time.monotonic() - started, budget_s=budget)
