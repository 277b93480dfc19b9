#!/usr/bin/env bash
# Stage "Tests": `test.sh platform` = unit, infra (mocks), gitops, policy, AWS-emulator and
# delivery tiers; `test.sh apps` = the bundled apps on a real broker, database and emulator.
# Each writes a JUnit report that the Jenkinsfile's `post` collects.
source "$(dirname "$0")/lib.sh"
tier="${1:-}"
case "$tier" in
  platform)
    run "$PY" -m pytest tests --ignore=tests/apps --junitxml="$REPORTS/junit-platform.xml" ;;
  apps)
    run "$PY" -m pytest tests/apps --junitxml="$REPORTS/junit-apps.xml" ;;
  *) die "usage: test.sh platform|apps" ;;
esac
