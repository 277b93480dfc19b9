"""Entry point the Pulumi CLI runs for `--policy-pack infra/policies/pack`.

The rules live in this repository (`infra.policies`); the pack puts the repository root on
`sys.path` so it wraps those same functions instead of a copy that could drift.
"""

import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[3]
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

from pulumi_policy import EnforcementLevel, PolicyPack  # noqa: E402 - after the path setup

from infra.policies.crossguard import PACK_NAME, policies  # noqa: E402

PolicyPack(
    name=PACK_NAME,
    # Each policy carries its own level (mandatory/advisory, from the rule's severity); this is
    # only the default for a policy that would not set one.
    enforcement_level=EnforcementLevel.MANDATORY,
    policies=policies(),
)
