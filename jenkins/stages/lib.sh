# Shared helpers for the stage scripts (sourced, not run).
#
# DRY_RUN=1 prints every command, exactly as it would run, instead of running it; the tests in
# tests/delivery/ assert those lines. Secrets are never expanded in what is printed: commands
# that need one reference the variable by name and are run with tracing off.
set -euo pipefail
set +x  # never trace: a traced `curl -H "Authorization: ..."` would print the token

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$REPO_ROOT"

VENV="${VENV:-.venv}"
PY="$VENV/bin/python"
PLATFORM="$VENV/bin/platform"
REPORTS="${REPORTS:-reports}"
DRY_RUN="${DRY_RUN:-0}"

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
run_to() {
  local file="$1"; shift
  if [[ "$DRY_RUN" == 1 ]]; then
    printf '%s > %s\n' "$(_show "$@")" "$file"
  else
    mkdir -p "$(dirname "$file")"
    "$@" 2>&1 | tee "$file"
  fi
}

# run_shell 'LINE': a pipeline that must stay one shell line (e.g. a secret piped via stdin).
# The line is printed verbatim, so secrets in it must be "$VARIABLE" references.
run_shell() {
  if [[ "$DRY_RUN" == 1 ]]; then printf '%s\n' "$1"; else bash -euo pipefail -c "$1"; fi
}

say() { printf '# %s\n' "$*"; }

die() { printf 'error: %s\n' "$*" >&2; exit 2; }

# The bundled apps, from infra/contracts.py (one source of truth).
apps() { "$PY" -c 'from infra.contracts import APP_NAMES; print("\n".join(APP_NAMES))'; }

# True when cloud credentials for Pulumi exist (CI binds them with withCredentials).
have_cloud_credentials() {
  [[ -n "${PULUMI_BACKEND_URL:-}" ]] && {
    [[ -n "${AWS_ACCESS_KEY_ID:-}" ]] || [[ -n "${AWS_WEB_IDENTITY_TOKEN_FILE:-}" ]] ||
      [[ -n "${AWS_PROFILE:-}" ]] || [[ -n "${AWS_CONTAINER_CREDENTIALS_FULL_URI:-}" ]]
  }
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
