#!/usr/bin/env bash
# Stage "Images" (main only): build each bundled app from its Dockerfile and push it to the
# registry that gitops/dev pulls from (infra/gitops/images.json), tagged with the git sha. ECR
# tags are immutable, so a sha is pushed once and only ever promoted, never rebuilt.
source "$(dirname "$0")/lib.sh"
sha="${GIT_COMMIT:?GIT_COMMIT (the commit being built) is required}"
registry="$(registry_for dev)"
host="${registry%%/*}"
region="$(ecr_region "$host")"

# The registry password goes from stdin to stdin; it is never an argument or a variable.
run_shell "aws ecr get-login-password --region $region | docker login --username AWS --password-stdin $host"
app_list=()
app_names app_list
for app in "${app_list[@]}"; do
  image="$registry/$app:$sha"
  run docker build --file "apps/${app//-/_}/Dockerfile" --tag "$image" \
    --label "org.opencontainers.image.revision=$sha" .
  run docker push "$image"
done
