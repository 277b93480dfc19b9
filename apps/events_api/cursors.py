"""Page cursors (the audit trail's and the task query's): opaque to clients, they are the last
row's sort position and the query's shape as compact JSON in unpadded URL-safe base64."""

from __future__ import annotations

import base64
import json
from typing import Any


def encode_cursor(payload: dict[str, Any]) -> str:
    raw = json.dumps(payload, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> Any:
    """The payload of `encode_cursor`; a ValueError (or UnicodeEncodeError, one of them) for
    anything else. The caller still checks the payload's fields."""
    padded = cursor + "=" * (-len(cursor) % 4)
    return json.loads(base64.urlsafe_b64decode(padded.encode("ascii")))
