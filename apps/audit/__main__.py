"""`python -m apps.audit <verb>`: the audit command line (what its workloads run)."""

from apps.audit.cli import app

app(prog_name="audit")
