#!/usr/bin/env bash
# Stage "PR plan" (every pull request, no credentials at all): the offline plan and policy check
# of every stack (`platform plan`: the program under mocks, no cloud), written to reports/.
#
# Inputs: CHANGE_TARGET (Jenkins), or CHANGED_FILES (newline-separated) to skip the git diff.
source "$(dirname "$0")/lib.sh"
stacks=()
affected_stacks_into stacks
say "affected stacks: ${stacks[*]:-none}"

run mkdir -p "$REPORTS"
all_stacks=()
lines_into all_stacks python3 jenkins/stages/affected_stacks.py --all
for stack in "${all_stacks[@]}"; do
  run_to "$REPORTS/plan-$stack.txt" "$PLATFORM" plan --stack "$stack" --quiet \
    --json "$REPORTS/plan-$stack.json"
done
