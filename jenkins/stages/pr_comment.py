#!/usr/bin/env python3
"""Build the pull-request comment from the offline plans and (when run) the Pulumi previews.

Usage: pr_comment.py OUT_JSON [--affected "dev prod"] REPORT...
Writes `{"body": "..."}` for GitHub's issue-comment API, and the same markdown next to it (`.md`)
for the archived artifacts. ANSI colours are stripped and
each report is cut to a size GitHub accepts (a comment holds at most 65536 characters).
"""

from __future__ import annotations

import json
import re
import sys
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


def main(argv: list[str]) -> int:
    out, *files = argv
    affected = ""
    if files[:1] == ["--affected"]:
        affected, files = files[1], files[2:]
    reports = [(_title(Path(f)), Path(f).read_text(errors="replace")) for f in files]
    body = render(reports, affected)
    out_path = Path(out)
    out_path.write_text(json.dumps({"body": body}))
    out_path.with_suffix(".md").write_text(body)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
