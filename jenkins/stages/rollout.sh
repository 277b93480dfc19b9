#!/usr/bin/env bash
# Stage "Rollout <env>" (main only, after deploy.sh <env>): wait until ArgoCD reports every app
# of <env> Synced and Healthy at the gitops commit promote.sh pushed, then smoke-test the
# deployed API. On failure `platform rollout` puts the previous image tags back with a commit
# that says why, pushes it, and exits non-zero: the build goes red.
#
# Inputs: ARGOCD_AUTH_TOKEN (Jenkins binding), AWS credentials for the smoke key in Secrets
# Manager, the files promote.sh wrote, and jenkins/delivery.yaml (URLs, timeouts).
source "$(dirname "$0")/lib.sh"
env="${1:?usage: rollout.sh ENV}"
sha="${GIT_COMMIT:?GIT_COMMIT (the commit being built) is required}"
branch="${BRANCH_NAME:-main}"
run "$PLATFORM" rollout --env "$env" --tag "$sha" --revision-file "$REPORTS/gitops-$env.rev" \
  --previous-images "$REPORTS/images-before-$env.json" --branch "$branch" \
  --report "$REPORTS/rollout-$env.json"
