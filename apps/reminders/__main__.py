"""`python -m apps.reminders <verb>`: the reminders command line (what its workloads run)."""

from apps.reminders.cli import app

app(prog_name="reminders")
