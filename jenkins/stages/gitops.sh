#!/usr/bin/env bash
# Stage "GitOps": the committed gitops/ tree must be exactly what the renderer produces, and the
# rendered manifests must pass checkov (skips and their reasons live in .checkov.yaml).
source "$(dirname "$0")/lib.sh"
run "$PLATFORM" gitops render --check
run .venv-tools/bin/checkov --config-file .checkov.yaml --directory gitops \
  --output cli --output junitxml --output-file-path "console,$REPORTS"
