#!/usr/bin/env bash
# Stage "Deploy <env>" (main only, inside `lock("pulumi-<env>")`): `pulumi up` with the policy
# pack, then the post-deploy smoke check. Credentials come from the Jenkins credential binding.
source "$(dirname "$0")/lib.sh"
env="${1:?usage: deploy.sh ENV}"
: "${PULUMI_BACKEND_URL:?PULUMI_BACKEND_URL (s3://<state bucket>?region=...) is required}"
pack=()
lines_into pack policy_pack_args
run pulumi login "$PULUMI_BACKEND_URL"
run_to "$REPORTS/up-$env.txt" pulumi up --stack "$env" --yes --diff --non-interactive "${pack[@]}"
run "$PLATFORM" verify --env "$env"
