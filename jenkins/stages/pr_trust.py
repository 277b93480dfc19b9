#!/usr/bin/env python3
"""Is this pull-request build trusted with (read-only) cloud credentials? Prints the verdict.

The Jenkinsfile runs this file as it is on the *target* branch, before any of the pull
request's code runs (`git show origin/<target>:jenkins/stages/pr_trust.py | python3 - --ref
origin/<target>`), and reads the trust list from the target branch too: a pull request cannot
add its own author to the list or rewrite the rule.

Rules: a build of a fork (`CHANGE_FORK` set by Jenkins' GitHub branch source) is untrusted,
whoever opened it; otherwise the author (`CHANGE_AUTHOR`) must be on the list
(jenkins/trusted-authors.txt: one GitHub login a line, `#` comments). GitHub logins are
case-insensitive. Prints `trusted` or `untrusted` on stdout and the reason on stderr.

Import-free beyond the standard library: it runs before the project's virtualenv exists.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from collections.abc import Iterable
from pathlib import Path

TRUST_LIST = "jenkins/trusted-authors.txt"


def parse_trust_list(text: str) -> frozenset[str]:
    """GitHub logins, lower-cased, from one-a-line text with `#` comments."""
    logins = set()
    for raw in text.splitlines():
        login = raw.split("#", 1)[0].strip()
        if login:
            logins.add(login.lower())
    return frozenset(logins)


def decide(author: str, fork: str, trusted: Iterable[str]) -> tuple[bool, str]:
    """(trusted?, why) for a pull request by `author`, from fork `fork` ("" when not a fork)."""
    if fork.strip():
        return False, f"built from the fork {fork.strip()!r}: forks never get cloud credentials"
    login = author.strip().lower()
    if not login:
        return False, "CHANGE_AUTHOR is empty: cannot tell who opened the pull request"
    if login in {t.lower() for t in trusted}:
        return True, f"{author.strip()!r} is on the trust list of the target branch"
    return False, f"{author.strip()!r} is not on the trust list ({TRUST_LIST})"


def _read_list(ref: str | None, path: str | None) -> str:
    if path is not None:
        return Path(path).read_text()
    if ref is None:
        raise SystemExit("pr_trust.py: give --ref (e.g. origin/main) or --trusted-file")
    result = subprocess.run(
        ["git", "show", f"{ref}:{TRUST_LIST}"], capture_output=True, text=True, check=False
    )
    if result.returncode != 0:
        # No list on the target branch: nobody is trusted (safe by default).
        sys.stderr.write(f"no {TRUST_LIST} on {ref}: {result.stderr.strip()}\n")
        return ""
    return result.stdout


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--ref", help="git ref whose trust list counts (the target branch)")
    parser.add_argument("--trusted-file", help="read the trust list from this file instead")
    args = parser.parse_args(argv)
    trusted = parse_trust_list(_read_list(args.ref, args.trusted_file))
    ok, why = decide(
        os.environ.get("CHANGE_AUTHOR", ""), os.environ.get("CHANGE_FORK", ""), trusted
    )
    sys.stderr.write(f"pull request {'trusted' if ok else 'untrusted'}: {why}\n")
    sys.stdout.write("trusted\n" if ok else "untrusted\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
