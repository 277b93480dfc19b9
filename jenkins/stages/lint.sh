#!/usr/bin/env bash
# Stage "Lint": ruff (rules and formatting) and mypy, the same commands as `make lint`.
source "$(dirname "$0")/lib.sh"
run "$VENV/bin/ruff" check .
run "$VENV/bin/ruff" format --check .
run "$VENV/bin/mypy" infra platform_cli apps
