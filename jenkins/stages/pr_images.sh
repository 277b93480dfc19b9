#!/usr/bin/env bash
# Stage "PR images" (every pull request, no credentials): build every bundled app's image the
# way the deploy rehearsal does (`platform images build`), then run every command the rendered
# manifests name in the image they name (`platform images check`), so a broken Dockerfile or a
# command the image lacks fails the PR rather than the first sync. Nothing is pushed.
source "$(dirname "$0")/lib.sh"
run "$PLATFORM" images build
run "$PLATFORM" images check
