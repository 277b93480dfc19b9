#!/usr/bin/env bash
# Job "drift" (jenkins/Jenkinsfile.drift, scheduled), once per cloud stack, under that stack's
# read-only preview role: `pulumi preview --refresh --expect-no-changes --json`. A DIY-backend
# preview takes no lock and writes no state (refresh --preview-only would take the lock), so a
# role that cannot write the state bucket can run it.
#
# Exit 0: no drift; 3: drift (the Jenkinsfile marks the build UNSTABLE); anything else: the
# check itself failed. The summary (resources and properties that differ) goes to
# reports/drift-<env>.md and, when DRIFT_WEBHOOK_URL is bound, to that chat webhook.
source "$(dirname "$0")/lib.sh"
env="${1:?usage: drift.sh ENV}"
: "${PULUMI_BACKEND_URL:?PULUMI_BACKEND_URL (s3://<state bucket>?region=...) is required}"
run mkdir -p "$REPORTS"
run pulumi login "$PULUMI_BACKEND_URL"
status=0
run_capture "$REPORTS/drift-$env.json" pulumi preview --stack "$env" --refresh \
  --expect-no-changes --json --non-interactive || status=$?
run "$PLATFORM" drift report "$REPORTS/drift-$env.json" --stack "$env" --preview-exit "$status" \
  --markdown "$REPORTS/drift-$env.md"
