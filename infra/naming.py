"""Pure helpers for names and tags (no Pulumi imports: plain functions, tested with hypothesis)."""

from __future__ import annotations

from collections.abc import Mapping


def merge_tags(name: str, base: Mapping[str, str], extra: Mapping[str, str]) -> dict[str, str]:
    """Tags for one resource: `Name` first, then the base tags, then the user's (user wins)."""
    return {"Name": name, **base, **extra}


def physical_name(prefix: str, role: str, max_length: int = 63) -> str:
    """A physical AWS name (lowercase, dash-separated) cut to the service's limit.

    Truncation keeps the role's end, which is the distinguishing part, and never ends on '-'.
    """
    name = f"{prefix}-{role}".lower().replace("_", "-")
    if len(name) > max_length:
        name = name[:max_length]
    return name.rstrip("-")
