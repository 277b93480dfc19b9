"""`python -m apps.common.healthcheck`: the image's HEALTHCHECK (the slim image has no curl).

Exit 0 when the app answers `GET /healthz` on `PORT` (the image sets it from the build argument),
1 otherwise, as Docker's HEALTHCHECK expects.
"""

from __future__ import annotations

import os
import sys
import urllib.error
import urllib.request


def main() -> int:
    port = os.environ.get("PORT", "")
    if not port.isdigit():
        print(f"PORT is {port!r}; allowed: the app's listen port", file=sys.stderr)  # noqa: T201
        return 1
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2):
            return 0
    except (urllib.error.URLError, OSError) as exc:
        print(f"/healthz on port {port}: {exc}", file=sys.stderr)  # noqa: T201
        return 1


if __name__ == "__main__":
    sys.exit(main())
