"""`python -m apps <verb> ...`: the image's default entrypoint.

An image is built for one app (`PLATFORM_APP`, set from the Dockerfile's `APP` build argument);
this runs that app's command line, so `docker run <image> --help` lists the app's verbs. The
workloads rendered into gitops/ name their module explicitly (`python -m apps.<app> <verb>`).
"""

from __future__ import annotations

import importlib.util
import os
import runpy
import sys


def main() -> None:
    app = os.environ.get("PLATFORM_APP", "")
    module = f"apps.{app}"
    if not app.isidentifier() or importlib.util.find_spec(f"{module}.__main__") is None:
        sys.exit(f"PLATFORM_APP={app!r} names no app in this image (no module {module}.__main__)")
    runpy.run_module(module, run_name="__main__", alter_sys=True)


if __name__ == "__main__":
    main()
