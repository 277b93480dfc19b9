#!/usr/bin/env bash
# Stage "Lint": ruff (rules and formatting), mypy and shellcheck, the same as `make lint`.
source "$(dirname "$0")/lib.sh"
run "$VENV/bin/ruff" check .
run "$VENV/bin/ruff" format --check .
run "$VENV/bin/mypy" infra platform_cli apps
run "$VENV/bin/shellcheck" jenkins/stages/*.sh
