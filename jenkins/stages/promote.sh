#!/usr/bin/env bash
# Stage "GitOps <env>" (main only): point <env>'s apps at the image built from this commit
# (`platform gitops set-image`, which re-renders gitops/<env>), commit and push; ArgoCD syncs it.
# When <env> pulls from another registry than dev, the image is copied there first.
#
# Two files for the rollout stage (`rollout.sh <env>`): the catalog as it was before the bump
# (the tags a rollback returns to) and the pushed gitops commit (the revision ArgoCD must reach).
source "$(dirname "$0")/lib.sh"
env="${1:?usage: promote.sh ENV}"
sha="${GIT_COMMIT:?GIT_COMMIT (the commit being built) is required}"
branch="${BRANCH_NAME:-main}"
source_registry="$(registry_for dev)"
target_registry="$(registry_for "$env")"
app_list=()
app_names app_list

if [[ "$target_registry" != "$source_registry" ]]; then
  host="${target_registry%%/*}"
  run_shell "aws ecr get-login-password --region $(ecr_region "$host") | docker login --username AWS --password-stdin $host"
  for app in "${app_list[@]}"; do
    run docker pull "$source_registry/$app:$sha"
    run docker tag "$source_registry/$app:$sha" "$target_registry/$app:$sha"
    run docker push "$target_registry/$app:$sha"
  done
fi
run mkdir -p "$REPORTS"
run cp infra/gitops/images.json "$REPORTS/images-before-$env.json"
for app in "${app_list[@]}"; do
  run "$PLATFORM" gitops set-image --env "$env" --app "$app" --tag "$sha"
done
run git add "gitops/$env" infra/gitops/images.json
run git commit -m "gitops($env): bundled apps -> $sha"
run git pull --rebase origin "$branch"  # another build may have promoted meanwhile
run git push origin "HEAD:$branch"
run_capture "$REPORTS/gitops-$env.rev" git rev-parse HEAD
