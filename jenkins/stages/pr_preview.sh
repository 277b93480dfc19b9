#!/usr/bin/env bash
# Stage "PR preview" (trusted pull requests only), once per cloud stack: `pulumi preview --diff`
# with the policy pack, under that stack's read-only preview role (`platform-preview-<env>`,
# declared by infra/security/ci_roles.py: it reads the cloud and the state, decrypts with the
# stack's secrets key, and can write nothing). Skipped for a stack the change cannot affect.
#
# Inputs: ENV; PULUMI_BACKEND_URL + AWS credentials (the Jenkins binding); CHANGE_TARGET or
# CHANGED_FILES as for pr_plan.sh.
source "$(dirname "$0")/lib.sh"
env="${1:?usage: pr_preview.sh ENV}"
stacks=()
affected_stacks_into stacks

if [[ " ${stacks[*]} " != *" $env "* ]]; then
  say "$env: this change cannot affect it, no preview"
  exit 0
fi
if ! have_cloud_credentials; then
  say "$env: no cloud credentials, pulumi preview skipped (the offline plan stands in)"
  exit 0
fi
pack=()
lines_into pack policy_pack_args
run pulumi login "$PULUMI_BACKEND_URL"
run_to "$REPORTS/preview-$env.txt" pulumi preview --stack "$env" --diff --non-interactive \
  "${pack[@]}"
