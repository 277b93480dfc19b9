"""`python -m apps.events_api <verb>`: the events-api command line (what its workloads run)."""

from apps.events_api.cli import app

app(prog_name="events-api")
