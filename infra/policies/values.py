"""Reading resource inputs the same way offline and under CrossGuard.

Inputs arrive as plain dicts/lists from the mock monitor and as read-only Mapping/Sequence proxies
from pulumi-policy, so every helper here tests against the abstract collections, never `dict` or
`list`. Numbers arrive as floats (protobuf has one number type) and some booleans as strings
("true" on launch-template EBS blocks), so the helpers normalise both.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

# Pulumi's wire marker for a secret value ({sig: secret_sig, "value": ...}); the mock monitor
# records secret inputs in this wrapped form.
SECRET_SIG_KEY = "4dabf18193072939515e22adb298388d"
SECRET_SIG = "1b47061264138c4ac30d75fd1eb44270"

OPEN_IPV4 = "0.0.0.0/0"
OPEN_IPV6 = "::/0"
OPEN_CIDRS = frozenset({OPEN_IPV4, OPEN_IPV6})


def is_wrapped_secret(value: Any) -> bool:
    return isinstance(value, Mapping) and value.get(SECRET_SIG_KEY) == SECRET_SIG


def unwrap(value: Any) -> Any:
    """The value inside a wrapped secret, or the value itself."""
    return value["value"] if is_wrapped_secret(value) else value


def get(inputs: Any, *path: str | int) -> Any:
    """Follow `path` through nested mappings/sequences; None as soon as a step is missing.

    A one-element list is looked through when the next step is a key: some providers model a
    single nested block as a list (`encryptionConfig` was a list in pulumi-aws 6, an object in 7).
    """
    node = unwrap(inputs)
    for step in path:
        node = unwrap(node)
        if isinstance(step, str):
            if is_sequence(node) and len(node) == 1:
                node = unwrap(node[0])
            if not isinstance(node, Mapping) or step not in node:
                return None
            node = node[step]
        else:
            if not is_sequence(node) or not -len(node) <= step < len(node):
                return None
            node = node[step]
    return unwrap(node)


def is_sequence(value: Any) -> bool:
    return isinstance(value, Sequence) and not isinstance(value, str | bytes)


def as_list(value: Any) -> list[Any]:
    """A sequence as a list, a single value as a one-element list, None as []."""
    value = unwrap(value)
    if value is None:
        return []
    if is_sequence(value):
        return [unwrap(item) for item in value]
    return [value]


def is_true(value: Any) -> bool:
    value = unwrap(value)
    if isinstance(value, str):
        return value.strip().lower() == "true"
    return value is True


def is_false(value: Any) -> bool:
    """Explicitly false (None, meaning "not set", is neither true nor false)."""
    value = unwrap(value)
    if isinstance(value, str):
        return value.strip().lower() == "false"
    return value is False


def as_number(value: Any) -> float | None:
    value = unwrap(value)
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            return None
    return None


def non_empty_string(value: Any) -> bool:
    value = unwrap(value)
    return isinstance(value, str) and bool(value.strip())


def parse_json_object(value: Any) -> Mapping[str, Any] | None:
    """A JSON document given as a string or as an already-parsed mapping; None if neither."""
    value = unwrap(value)
    if isinstance(value, Mapping):
        return value
    if isinstance(value, str):
        try:
            parsed = json.loads(value)
        except ValueError:
            return None
        return parsed if isinstance(parsed, Mapping) else None
    return None


def statements(document: Mapping[str, Any]) -> Iterator[Mapping[str, Any]]:
    """The statements of an IAM-style policy document (a single statement may be an object)."""
    for statement in as_list(document.get("Statement")):
        if isinstance(statement, Mapping):
            yield statement


_SERVICE_WILDCARD = re.compile(r"^[A-Za-z0-9-]+:\*$")


def is_wildcard_action(action: Any) -> bool:
    """`*` or `service:*` (a partial wildcard such as `s3:Get*` is a narrower, allowed form)."""
    return isinstance(action, str) and (
        action.strip() == "*" or bool(_SERVICE_WILDCARD.match(action))
    )


def port_range(from_port: Any, to_port: Any, protocol: Any) -> tuple[int, int] | None:
    """The inclusive port range of a rule; None means every port (protocol -1/all or no ports)."""
    proto = str(unwrap(protocol) or "").lower()
    if proto in ("-1", "all"):
        return None
    low, high = as_number(from_port), as_number(to_port)
    if low is None or high is None:
        return None
    return int(low), int(high)


def walk(
    value: Any, path: tuple[str | int, ...] = ()
) -> Iterator[tuple[tuple[str | int, ...], Any]]:
    """Every (path, node) in a nested structure, depth first, in key order (deterministic)."""
    value = unwrap(value)
    yield path, value
    if isinstance(value, Mapping):
        for key in sorted(value, key=str):
            yield from walk(value[key], (*path, key))
    elif is_sequence(value):
        for index, item in enumerate(value):
            yield from walk(item, (*path, index))


def dotted(path: tuple[str | int, ...]) -> str:
    return "".join(f"[{step}]" if isinstance(step, int) else f".{step}" for step in path).lstrip(
        "."
    )
