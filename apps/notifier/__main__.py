"""`python -m apps.notifier <verb>`: the notifier command line (what its workloads run)."""

from apps.notifier.cli import app

app(prog_name="notifier")
