#!/usr/bin/env bash
# Stage "Images" (main only): build every bundled app from apps/Dockerfile exactly as pull
# requests and the deploy rehearsal do (`platform images build`, buildah), on the official base,
# and push them to the registry gitops/dev pulls from (infra/gitops/images.json), tagged with
# the git sha. ECR tags are immutable, so a sha is pushed once and only ever promoted.
source "$(dirname "$0")/lib.sh"
sha="${GIT_COMMIT:?GIT_COMMIT (the commit being built) is required}"
registry="$(registry_for dev)"
host="${registry%%/*}"
region="$(ecr_region "$host")"

# The registry password goes from stdin to stdin; it is never an argument or a variable.
run_shell "aws ecr get-login-password --region $region | podman login --username AWS --password-stdin $host"
run "$PLATFORM" images push --base official --registry "$registry" --tag "$sha"
