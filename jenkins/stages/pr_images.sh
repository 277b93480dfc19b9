#!/usr/bin/env bash
# Stage "PR images" (every pull request, no credentials): build every bundled app's image the
# way the deploy rehearsal does (`platform images build`), so a broken Dockerfile fails the PR
# rather than the first build on main. Nothing is pushed.
source "$(dirname "$0")/lib.sh"
run "$PLATFORM" images build
