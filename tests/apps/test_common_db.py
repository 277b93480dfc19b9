"""Migration runner on real PostgreSQL: ordered, idempotent, atomic, safe under concurrency."""

from __future__ import annotations

import threading
from pathlib import Path

import psycopg
import pytest

from apps.common.db import DbSettings, applied_versions, load_migrations, migrate


def _write(directory: Path, files: dict[str, str]) -> Path:
    directory.mkdir(exist_ok=True)
    for name, sql in files.items():
        (directory / name).write_text(sql)
    return directory


def test_db_settings_build_conninfo_from_facts(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DB_HOST", "db.internal")
    monkeypatch.setenv("DB_PORT", "6543")
    monkeypatch.setenv("DB_NAME", "platform")
    monkeypatch.setenv("DB_USER", "app")
    monkeypatch.setenv("DB_PASSWORD", "p@ss/word")
    settings = DbSettings()
    info = psycopg.conninfo.conninfo_to_dict(settings.conninfo())
    assert (info["host"], info["port"], info["dbname"]) == ("db.internal", "6543", "platform")
    assert (info["user"], info["password"]) == ("app", "p@ss/word")
    assert "p@ss" not in settings.redacted() and "p@ss" not in repr(settings)


def test_only_the_facts_channel_names_the_database(monkeypatch: pytest.MonkeyPatch) -> None:
    # A DATABASE_URL left in a shell must not win over the DB_* facts every deployed pod gets.
    monkeypatch.setenv("DATABASE_URL", "postgresql://u@elsewhere:1/d")
    monkeypatch.setenv("DB_HOST", "db.internal")
    info = psycopg.conninfo.conninfo_to_dict(DbSettings().conninfo())
    assert info["host"] == "db.internal"


def test_migrate_applies_in_order_then_is_a_no_op(database_url: str, tmp_path: Path) -> None:
    directory = _write(
        tmp_path / "m",
        {
            "0002_add_col.sql": "ALTER TABLE t ADD COLUMN b int;",
            "0001_create.sql": "CREATE TABLE t (a int);",
        },
    )
    assert migrate(database_url, "demo", directory) == [1, 2]
    assert migrate(database_url, "demo", directory) == []
    assert applied_versions(database_url, "demo") == [1, 2]
    with psycopg.connect(database_url) as conn:
        conn.execute("INSERT INTO t (a, b) VALUES (1, 2)")


def test_failed_migration_leaves_no_trace(database_url: str, tmp_path: Path) -> None:
    directory = _write(
        tmp_path / "m",
        {
            "0001_ok.sql": "CREATE TABLE ok (a int);",
            "0002_bad.sql": "CREATE TABLE half (a int); SELECT no_such_function();",
        },
    )
    with pytest.raises(psycopg.Error):
        migrate(database_url, "demo", directory)
    assert applied_versions(database_url, "demo") == [1]
    with psycopg.connect(database_url) as conn:
        assert conn.execute("SELECT to_regclass('half')").fetchone() == (None,)


def test_concurrent_replicas_apply_each_migration_once(database_url: str, tmp_path: Path) -> None:
    # A non-idempotent statement: running it twice would fail with a duplicate table.
    directory = _write(tmp_path / "m", {"0001_create.sql": "CREATE TABLE once (a int);"})
    results: list[list[int]] = []
    errors: list[BaseException] = []

    def run() -> None:
        try:
            results.append(migrate(database_url, "demo", directory))
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=run) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert sorted(results) == [[], [], [], [1]]


def test_badly_named_migration_is_rejected(tmp_path: Path) -> None:
    directory = _write(tmp_path / "m", {"1_create.sql": "SELECT 1;"})
    with pytest.raises(ValueError, match="NNNN_lower_snake"):
        load_migrations(directory)
