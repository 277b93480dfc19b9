"""Entry point for `pulumi up -s <env>`: read the stack config once, then build the platform."""

from infra.config import load_from_pulumi
from infra.program import build

build(load_from_pulumi())
