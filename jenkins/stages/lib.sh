# shellcheck shell=bash
# Shared helpers for the stage scripts (sourced, not run).
#
# DRY_RUN=1 prints every command, exactly as it would run, instead of running it; the tests in
# tests/delivery/ assert those lines. Secrets are never expanded in what is printed: commands
# that need one reference the variable by name and are run with tracing off.
set -euo pipefail
set +x  # never trace: a traced command would print what it was given

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$REPO_ROOT"

# These are read by the scripts that source this file.
# shellcheck disable=SC2034
{
  VENV="${VENV:-.venv}"
  PY="$VENV/bin/python"
  PLATFORM="$VENV/bin/platform"
  REPORTS="${REPORTS:-reports}"
  DRY_RUN="${DRY_RUN:-0}"
}

# Quote one word for a copy-pasteable command line: bare when safe, else in single quotes.
_quote() {
  if [[ "$1" =~ ^[A-Za-z0-9_./:=@,+%-]+$ ]]; then
    printf '%s' "$1"
  else
    printf "'%s'" "${1//\'/\'\\\'\'}"
  fi
}

_show() {
  local out="" word
  for word in "$@"; do out+="$(_quote "$word") "; done
  printf '%s\n' "${out% }"
}

# run CMD ARGS...: run a command (or print it under DRY_RUN=1).
run() {
  if [[ "$DRY_RUN" == 1 ]]; then _show "$@"; else "$@"; fi
}

# run_to FILE CMD ARGS...: run a command with stdout+stderr teed into FILE.
run_to() { _run_into tee "$@"; }

# run_capture FILE CMD ARGS...: run a command with only its stdout written to FILE (e.g. JSON that
# stderr's progress lines must not corrupt).
run_capture() { _run_into stdout "$@"; }

# _run_into tee|stdout FILE CMD ARGS...: what run_to and run_capture share (the dry-run line, the
# report folder); `tee` keeps the output on the console too.
_run_into() {
  local how="$1" file="$2"; shift 2
  if [[ "$DRY_RUN" == 1 ]]; then
    printf '%s > %s\n' "$(_show "$@")" "$file"
    return
  fi
  mkdir -p "$(dirname "$file")"
  if [[ "$how" == tee ]]; then "$@" 2>&1 | tee "$file"; else "$@" >"$file"; fi
}

# run_shell 'LINE': a pipeline that must stay one shell line (e.g. a secret piped via stdin).
# The line is printed verbatim, so secrets in it must be "$VARIABLE" references.
run_shell() {
  if [[ "$DRY_RUN" == 1 ]]; then printf '%s\n' "$1"; else bash -euo pipefail -c "$1"; fi
}

say() { printf '# %s\n' "$*"; }

die() { printf 'error: %s\n' "$*" >&2; exit 2; }

# lines_into NAME CMD ARGS...: the output lines of CMD into the array NAME; the script stops (exit
# 2) when CMD fails. `for x in $(cmd)` and `mapfile -t a < <(cmd)` both ignore cmd's exit status,
# even under `set -euo pipefail`, so a failing lookup would silently loop zero times.
lines_into() {
  local __name="$1" __out __status=0
  shift
  __out="$("$@")" || __status=$?
  ((__status == 0)) || die "'$*' failed (exit $__status)"
  if [[ -z "$__out" ]]; then
    mapfile -t "$__name" </dev/null
  else
    mapfile -t "$__name" <<<"$__out"
  fi
}

# The bundled apps, from infra/contracts.py (one source of truth).
apps() { "$PY" -c 'from infra.contracts import APP_NAMES; print("\n".join(APP_NAMES))'; }

# app_names NAME: the bundled apps into the array NAME; an empty list is an error too.
app_names() {
  lines_into "$1" apps
  local -n __apps="$1"
  ((${#__apps[@]})) || die "infra.contracts.APP_NAMES is empty"
}

# True when cloud credentials for Pulumi exist (CI binds them with withCredentials).
have_cloud_credentials() {
  [[ -n "${PULUMI_BACKEND_URL:-}" ]] && {
    [[ -n "${AWS_ACCESS_KEY_ID:-}" ]] || [[ -n "${AWS_WEB_IDENTITY_TOKEN_FILE:-}" ]] ||
      [[ -n "${AWS_PROFILE:-}" ]] || [[ -n "${AWS_CONTAINER_CREDENTIALS_FULL_URI:-}" ]]
  }
}

# affected_stacks_into NAME: the stacks this pull request can affect (affected_stacks.py), from
# CHANGED_FILES (newline-separated) or else the diff against CHANGE_TARGET.
affected_stacks_into() {
  local changed
  if [[ -n "${CHANGED_FILES:-}" ]]; then
    changed="$CHANGED_FILES"
  else
    # Read-only, so it runs for real even under DRY_RUN: the stack list depends on it.
    changed="$(git diff --name-only "origin/${CHANGE_TARGET:-main}...HEAD")"
  fi
  lines_into "$1" python3 jenkins/stages/affected_stacks.py <<<"$changed"
}

# The policy pack flag, when the pack exists.
policy_pack_args() {
  if [[ -f infra/policies/pack/PulumiPolicy.yaml ]]; then
    printf '%s\n' --policy-pack infra/policies/pack
  fi
}

# The registry an environment pulls images from (infra/gitops/images.json: one source of truth).
registry_for() {
  python3 -c 'import json, sys; print(json.load(open(sys.argv[1]))["registries"][sys.argv[2]])' \
    infra/gitops/images.json "$1"
}

# The region of an ECR host name (<account>.dkr.ecr.<region>.amazonaws.com).
ecr_region() { local host="$1"; host="${host#*.dkr.ecr.}"; printf '%s\n' "${host%%.*}"; }
