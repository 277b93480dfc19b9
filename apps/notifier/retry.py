"""Retry policy: which failures are worth retrying, and how long to wait between attempts."""

from __future__ import annotations

import random
from dataclasses import dataclass
from enum import StrEnum

import httpx

# 408 Request Timeout, 425 Too Early and 429 Too Many Requests are the 4xx codes that mean
# "try again later"; every other 4xx says the request itself is wrong and will stay wrong.
RETRYABLE_4XX = frozenset({408, 425, 429})


class Verdict(StrEnum):
    DELIVERED = "delivered"
    TRANSIENT = "transient"
    PERMANENT = "permanent"


@dataclass(frozen=True)
class Outcome:
    verdict: Verdict
    reason: str
    """Short, log-safe description (never contains the URL or a credential)."""
    status_code: int | None = None
    retry_after_s: float | None = None


def classify_response(response: httpx.Response) -> Outcome:
    code = response.status_code
    if 200 <= code < 300:
        return Outcome(Verdict.DELIVERED, f"http_{code}", code)
    retry_after = _retry_after_seconds(response.headers.get("Retry-After"))
    if code >= 500 or code in RETRYABLE_4XX:
        return Outcome(Verdict.TRANSIENT, f"http_{code}", code, retry_after)
    # 3xx included: redirects are not followed, a moved endpoint is a configuration error.
    return Outcome(Verdict.PERMANENT, f"http_{code}", code)


def classify_exception(exc: httpx.HTTPError) -> Outcome:
    """Timeouts and connection-level errors are transient; anything else is a bug in the request."""
    if isinstance(exc, httpx.TimeoutException):
        return Outcome(Verdict.TRANSIENT, "timeout")
    if isinstance(exc, httpx.TransportError):
        return Outcome(Verdict.TRANSIENT, type(exc).__name__)
    return Outcome(Verdict.PERMANENT, type(exc).__name__)


def _retry_after_seconds(value: str | None) -> float | None:
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        return None  # the HTTP-date form is rare for webhooks; fall back to our own backoff


@dataclass(frozen=True)
class BackoffPolicy:
    """Exponential backoff with "equal jitter".

    The delay before retry n (n = 1 after the first failure) is drawn uniformly from
    [d/2, d] with d = min(max_s, base_s * 2**(n-1)). The jitter spreads replicas that failed
    together; the d/2 floor (unlike "full jitter") keeps a failing target from being hammered by
    near-zero waits.
    """

    max_attempts: int = 5
    base_s: float = 0.5
    max_s: float = 30.0

    def delay(self, failed_attempts: int, rng: random.Random | None = None) -> float:
        ceiling = min(self.max_s, self.base_s * 2 ** max(0, failed_attempts - 1))
        draw = (rng or random).uniform(ceiling / 2, ceiling)
        return draw

    def wait_for(self, outcome: Outcome, failed_attempts: int) -> float:
        """Honour a server's Retry-After, but never beyond our own ceiling."""
        if outcome.retry_after_s is not None:
            return min(self.max_s, outcome.retry_after_s)
        return self.delay(failed_attempts)
