"""The one shape of a component's bad-input error: the field, its value, what is allowed."""

from __future__ import annotations

from collections.abc import Sequence


def require_one_of(field: str, value: str, allowed: Sequence[str]) -> None:
    """Raise `ValueError("<field>: '<value>'; allowed: a, b")` unless `value` is in `allowed`."""
    if value not in allowed:
        raise ValueError(f"{field}: {value!r}; allowed: {', '.join(allowed)}")
