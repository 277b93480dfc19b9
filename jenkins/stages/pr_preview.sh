#!/usr/bin/env bash
# Stage "PR preview": the offline plan + policy check of every stack (no credentials needed), and,
# when cloud credentials exist, `pulumi preview --diff` with the policy pack for every stack the
# change can affect. Everything is written to reports/ (archived) and posted as one PR comment.
#
# Inputs: CHANGE_TARGET (Jenkins), or CHANGED_FILES (newline-separated) to skip the git diff;
# PULUMI_BACKEND_URL + AWS credentials for the previews; GITHUB_TOKEN, GITHUB_REPOSITORY and
# CHANGE_ID to post the comment. The token only ever appears as "$GITHUB_TOKEN".
source "$(dirname "$0")/lib.sh"

if [[ -n "${CHANGED_FILES:-}" ]]; then
  changed="$CHANGED_FILES"
else
  # Read-only, so it runs for real even under DRY_RUN: the stack list depends on it.
  changed="$(git diff --name-only "origin/${CHANGE_TARGET:-main}...HEAD")"
fi
mapfile -t stacks < <(printf '%s\n' "$changed" | python3 "$(dirname "$0")/affected_stacks.py")
say "affected stacks: ${stacks[*]:-none}"

run mkdir -p "$REPORTS"
reports=()
mapfile -t all_stacks < <(python3 "$(dirname "$0")/affected_stacks.py" --all)
for stack in "${all_stacks[@]}"; do
  run_to "$REPORTS/plan-$stack.txt" "$PLATFORM" plan --stack "$stack" --quiet \
    --json "$REPORTS/plan-$stack.json"
  reports+=("$REPORTS/plan-$stack.txt")
done

if ((${#stacks[@]})) && have_cloud_credentials; then
  mapfile -t pack < <(policy_pack_args)
  run pulumi login "$PULUMI_BACKEND_URL"
  for stack in "${stacks[@]}"; do
    run_to "$REPORTS/preview-$stack.txt" pulumi preview --stack "$stack" --diff \
      --non-interactive "${pack[@]}"
    reports+=("$REPORTS/preview-$stack.txt")
  done
elif ((${#stacks[@]})); then
  say "no cloud credentials: pulumi preview skipped, the offline plans stand in"
fi

run python3 jenkins/stages/pr_comment.py "$REPORTS/pr-comment.json" \
  --affected "${stacks[*]:-none}" "${reports[@]}"

if [[ -n "${GITHUB_TOKEN:-}" && -n "${CHANGE_ID:-}" ]]; then
  run_shell 'curl -fsS -o /dev/null -X POST -H "Authorization: Bearer $GITHUB_TOKEN" -H "Accept: application/vnd.github+json" --data-binary @'"$REPORTS"'/pr-comment.json "https://api.github.com/repos/$GITHUB_REPOSITORY/issues/$CHANGE_ID/comments"'
else
  say "no GITHUB_TOKEN/CHANGE_ID: comment left in $REPORTS/pr-comment.md"
fi
