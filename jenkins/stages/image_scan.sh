#!/usr/bin/env bash
# Stage "Image scan" (main only, after "Images"): read ECR's scan findings of every image pushed
# for this commit and refuse promotion on any CRITICAL finding, or on a HIGH one that is not on
# the reviewed allow-list (jenkins/scan-allowlist.yaml: each entry has a reason and an expiry).
source "$(dirname "$0")/lib.sh"
sha="${GIT_COMMIT:?GIT_COMMIT (the commit being built) is required}"
run "$PLATFORM" image-scan --env dev --tag "$sha" --allow-list jenkins/scan-allowlist.yaml \
  --report "$REPORTS/image-scan.json"
