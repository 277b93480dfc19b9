"""The audit archive runs on a schedule in every environment, as the audit app's identity."""

from __future__ import annotations

import pytest
import yaml

from infra.contracts import ENVIRONMENTS, app_contract
from infra.gitops.catalog import APP_SPECS


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_audit_archive_cron_job(env: str, rendered: dict[str, str]) -> None:
    path = f"{env}/audit/cron-job-audit-archive.yaml"
    assert path in rendered, sorted(p for p in rendered if p.startswith(f"{env}/audit/"))
    cron = yaml.safe_load(rendered[path])
    spec = cron["spec"]
    assert spec["concurrencyPolicy"] == "Forbid"  # two runs must not race on one window
    assert spec["schedule"] == "17 * * * *"
    pod = spec["jobTemplate"]["spec"]["template"]["spec"]
    # The audit ServiceAccount is the one whose Pod Identity role may write the bucket.
    assert pod["serviceAccountName"] == app_contract("audit").service_account
    (container,) = pod["containers"]
    assert container["command"] == list(
        next(s for s in APP_SPECS if s.name == "audit").command("archive")
    )
    refs = {
        ref.get("configMapRef", ref.get("secretRef", {})).get("name")
        for ref in container["envFrom"]
    }
    # The database login: the shared `platform-db` locally; on RDS the app's own secret, named
    # in its settings (audit-config) and read by the app itself.
    login = "platform-db" if env == "localstack" else "audit-config"
    assert {"platform-facts", login} <= refs
    assert env == "localstack" or "platform-db" not in refs
    assert "&id" not in rendered[path] and "*id" not in rendered[path]


def test_only_the_audit_app_archives(rendered: dict[str, str]) -> None:
    crons = sorted(p for p in rendered if "/cron-job-" in p and "-archive" in p)
    assert crons == [f"{env}/audit/cron-job-audit-archive.yaml" for env in sorted(ENVIRONMENTS)]


@pytest.mark.parametrize("env", ["dev", "staging", "prod"])
def test_database_logins_rotate_weekly_on_rds(rendered: dict[str, str], env: str) -> None:
    cron = yaml.safe_load(rendered[f"{env}/db-roles/cron-job-db-roles-rotate.yaml"])
    spec = cron["spec"]
    assert spec["concurrencyPolicy"] == "Forbid"  # two rotations must not race
    pod = spec["jobTemplate"]["spec"]["template"]["spec"]
    assert pod["serviceAccountName"] == "db-roles"  # the only role that reads the master secret
    (container,) = pod["containers"]
    assert container["command"] == ["python", "-m", "apps.db_roles", "rotate"]
    assert "localstack/db-roles/cron-job-db-roles-rotate.yaml" not in rendered
