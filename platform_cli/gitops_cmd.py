"""Sub-commands of `platform` for this area (registered by platform_cli.main)."""

from __future__ import annotations

import typer


def register(app: typer.Typer) -> None:
    """Add this module's commands to the `platform` app."""
