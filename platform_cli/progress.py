"""Step-by-step progress for the long commands (`platform local`, `platform rehearse`)."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator

from rich.console import Console

Step = Callable[[str], contextlib.AbstractContextManager[None]]
"""`with step("starting X"):` shows a spinner, then `ok X (1.2 s)`; tests pass a no-op."""


def stepper(console: Console) -> Step:
    @contextlib.contextmanager
    def step(label: str) -> Iterator[None]:
        begun = time.monotonic()
        with console.status(f"{label} ..."):
            yield
        console.print(f"[green]ok[/green] {label} [dim]({time.monotonic() - begun:.1f} s)[/dim]")

    return step
