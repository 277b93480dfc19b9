#!/usr/bin/env bash
# Stages "PR comment" (trusted) and "PR report" (untrusted): one markdown report of the offline
# plans and the previews, archived in reports/; posted on the pull request only when a token is
# bound (trusted builds). The token is read from the environment by pr_comment.py, so it never
# appears on a command line.
#
# Inputs: CHANGE_TARGET or CHANGED_FILES as for pr_plan.sh; GITHUB_TOKEN, GITHUB_REPOSITORY and
# CHANGE_ID to post.
source "$(dirname "$0")/lib.sh"
stacks=()
affected_stacks_into stacks
all_stacks=()
lines_into all_stacks python3 jenkins/stages/affected_stacks.py --all

reports=()
for stack in "${all_stacks[@]}"; do reports+=("$REPORTS/plan-$stack.txt"); done
for stack in "${stacks[@]}"; do
  # The localstack stack's endpoints are loopback: nothing to preview in CI, the plan covers it.
  [[ "$stack" == localstack ]] || reports+=("$REPORTS/preview-$stack.txt")
done

run python3 jenkins/stages/pr_comment.py "$REPORTS/pr-comment.json" \
  --affected "${stacks[*]:-none}" "${reports[@]}"
if [[ -n "${GITHUB_TOKEN:-}" && -n "${CHANGE_ID:-}" ]]; then
  run python3 jenkins/stages/pr_comment.py post "$REPORTS/pr-comment.json"
else
  say "no GITHUB_TOKEN/CHANGE_ID: comment left in $REPORTS/pr-comment.md"
fi
