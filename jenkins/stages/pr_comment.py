#!/usr/bin/env python3
"""Build the pull-request comment from the offline plans and (when run) the Pulumi previews.

Usage: pr_comment.py OUT_JSON [--affected "dev prod"] REPORT...
       pr_comment.py post OUT_JSON
Writes `{"body": "..."}` for GitHub's issue-comment API, and the same markdown next to it (`.md`)
for the archived artifacts. ANSI colours are stripped and
each report is cut to a size GitHub accepts (a comment holds at most 65536 characters). A report
file that does not exist (a preview that did not run: untrusted build, no credentials) is listed
as not run.

`post` sends OUT_JSON to `POST /repos/{GITHUB_REPOSITORY}/issues/{CHANGE_ID}/comments`. The token
is read from GITHUB_TOKEN here, in-process, so it is never on a command line (where `ps` and a
traced shell would show it). The standard library's urllib is used because this script runs
with the system python3, outside the project's virtualenv.
"""

from __future__ import annotations

import json
import os
import re
import sys
import urllib.request
from pathlib import Path

MAX_COMMENT_CHARS = 60_000
_ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")
MARKER = "<!-- platform-pr-preview -->"
"""Lets a bot find and update its earlier comment instead of piling up new ones."""


def render(
    reports: list[tuple[str, str]], affected: str = "", max_chars: int = MAX_COMMENT_CHARS
) -> str:
    """Markdown: which stacks `pulumi preview` covers, then one collapsible section per report."""
    parts = [MARKER, "### Infrastructure preview", ""]
    if affected:
        parts += [f"Stacks this change can affect: **{affected}**", ""]
    if not reports:
        return "\n".join([*parts, "No report was produced.", ""])
    budget = max(1000, (max_chars - 500) // len(reports))
    for title, text in reports:
        clean = _ANSI.sub("", text).strip()
        if len(clean) > budget:
            clean = clean[: budget - 40] + "\n... (cut; the full report is archived)"
        parts += [f"<details><summary>{title}</summary>", "", "```", clean, "```", "</details>", ""]
    return "\n".join(parts)


def _title(path: Path) -> str:
    kind, _, stack = path.stem.partition("-")
    return f"{stack}: {'offline plan' if kind == 'plan' else 'pulumi preview --diff'}"


def _report(path: Path) -> tuple[str, str]:
    if not path.exists():
        return _title(path), "(not run for this build)"
    return _title(path), path.read_text(errors="replace")


def post(comment_json: Path, environ: dict[str, str] | None = None) -> int:
    """POST the comment; returns the HTTP status. Raises on a non-2xx answer."""
    env = dict(os.environ if environ is None else environ)
    missing = [k for k in ("GITHUB_TOKEN", "GITHUB_REPOSITORY", "CHANGE_ID") if not env.get(k)]
    if missing:
        raise SystemExit(f"pr_comment.py post: {', '.join(missing)} not set")
    api = env.get("GITHUB_API_URL", "https://api.github.com").rstrip("/")
    url = f"{api}/repos/{env['GITHUB_REPOSITORY']}/issues/{env['CHANGE_ID']}/comments"
    request = urllib.request.Request(  # noqa: S310 - the URL is built from the API base above
        url,
        data=comment_json.read_bytes(),
        method="POST",
        headers={
            "Authorization": f"Bearer {env['GITHUB_TOKEN']}",
            "Accept": "application/vnd.github+json",
            "Content-Type": "application/json",
        },
    )
    with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310
        return int(response.status)


def main(argv: list[str]) -> int:
    if argv[:1] == ["post"]:
        post(Path(argv[1]))
        return 0
    out, *files = argv
    affected = ""
    if files[:1] == ["--affected"]:
        affected, files = files[1], files[2:]
    reports = [_report(Path(f)) for f in files]
    body = render(reports, affected)
    out_path = Path(out)
    out_path.write_text(json.dumps({"body": body}))
    out_path.with_suffix(".md").write_text(body)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
