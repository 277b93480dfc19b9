"""`platform local` end to end, as a user runs it: real processes, real numbers, nothing left.

Run 1: the non-interactive demo with the offline plan; the report must match what was sent.
Run 2 (running twice works): `--keep-running`, then Ctrl-C (SIGINT); it stops every process.
Run 3: Ctrl-C while it is still starting. "Nothing left" is checked by pid and by scanning /proc
for any process that inherited the run's marker variable.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
PLATFORM = [sys.executable, "-m", "platform_cli.main", "local"]

pytestmark = pytest.mark.slow


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # exists, owned by another user (PostgreSQL under root runs as its own user)
    # A zombie has exited; it only waits for its parent (gone) to reap it.
    stat = Path(f"/proc/{pid}/stat")
    return not (stat.exists() and stat.read_text().split(") ", 1)[-1].startswith("Z"))


MARK = "PLATFORM_LOCAL_TEST_RUN"
"""Every process `platform local` starts inherits this variable, so survivors can be found."""


def _env(mark: str) -> dict[str, str]:
    # No external broker, database (the DB_* facts) or emulator: the run starts its own.
    env = {
        k: v for k, v in os.environ.items() if not k.startswith(("KAFKA_", "DB_", "LOCALSTACK_"))
    }
    return {**env, "COLUMNS": "160", MARK: mark}


def _survivors(mark: str) -> list[str]:
    """Command lines of live processes whose environment carries this run's mark."""
    needle = f"{MARK}={mark}".encode()
    found = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            if needle in (proc / "environ").read_bytes().split(b"\0") and _alive(int(proc.name)):
                found.append((proc / "cmdline").read_bytes().replace(b"\0", b" ").decode())
        except OSError:
            continue
    return found


def test_demo_report_matches_what_was_sent_and_nothing_survives(tmp_path: Path) -> None:
    report_file = tmp_path / "report.json"
    mark = uuid.uuid4().hex
    result = subprocess.run(
        [*PLATFORM, "--events", "12", "--tasks", "5", "--report-json", str(report_file)],
        cwd=REPO,
        env=_env(mark),
        capture_output=True,
        text=True,
        timeout=400,
        check=False,
    )
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]
    report = json.loads(report_file.read_text())

    assert report["complete"] is True
    assert report["events_accepted"] == 12
    assert report["tasks_created"] == 6  # 5 plus the one due in seconds, with a reminder
    # 12 events + 6 task changes + 1 fired reminder (task.reminder.due)
    assert report["audit_rows"] == 19
    assert report["notifications_delivered"] == 19
    assert report["reminders_delivered"] == 1
    assert report["dead_letters"] == 2
    assert report["archived_rows"] == 19
    assert report["archive_objects"] >= 1
    assert report["archive_objects"] == report["expected"]["archive_objects"]
    assert [p["stack"] for p in report["plan"]] == ["localstack", "dev", "staging", "prod"]
    assert all(p["resources"] and p["resources"] > 10 for p in report["plan"])
    assert "/docs" in report["urls"]["API docs"]
    for label in ("events-api metrics", "notifier metrics", "audit metrics", "reminders metrics"):
        assert report["urls"][label].endswith("/metrics")

    assert "demo complete" in result.stdout
    assert "nothing left running" in result.stdout
    assert len(report["pids"]) >= 10  # 3 apps, sink, migrations, archive, plans, broker, db
    assert [pid for pid in report["pids"] if _alive(pid)] == []
    assert _survivors(mark) == []


def test_keep_running_then_ctrl_c_stops_everything(tmp_path: Path) -> None:
    """It stays usable: the printed demo key signs in to the printed console URL and the API;
    the key is shown once and is not in the report file."""
    import threading

    import httpx

    report_file = tmp_path / "report.json"
    mark = uuid.uuid4().hex
    process = subprocess.Popen(
        [
            *PLATFORM,
            "--keep-running",
            "--no-plan",
            "--events",
            "4",
            "--tasks",
            "2",
            "--report-json",
            str(report_file),
        ],
        cwd=REPO,
        env=_env(mark),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(process.stdout or ()), daemon=True)
    reader.start()
    try:
        deadline = time.monotonic() + 300
        while not any("sign in with the demo API key" in ln for ln in lines[:-1]):
            assert process.poll() is None, "".join(lines)[-4000:]
            assert time.monotonic() < deadline, "".join(lines)[-4000:]
            time.sleep(0.5)
        report = json.loads(report_file.read_text())
        assert report["complete"] is True
        at = next(i for i, ln in enumerate(lines) if "sign in with the demo API key" in ln)
        console_url = lines[at].split("web console:", 1)[1].split()[0]
        key = lines[at + 1].strip()
        assert key and key not in report_file.read_text()
        assert process.poll() is None  # still serving
        assert all(_alive(pid) for pid in report["pids"][-2:])  # broker and database are up
        api = console_url.removesuffix("/console/")
        with httpx.Client(base_url=api, timeout=10) as client:
            tasks = client.get("/api/v1/tasks", headers={"Authorization": f"Bearer {key}"})
            assert tasks.status_code == 200, tasks.text
            assert client.get("/api/v1/tasks").status_code == 401
            page = client.get("/console/")
            if (REPO / "apps" / "events_api" / "console" / "index.html").exists():
                assert page.status_code == 200 and "script-src 'self'" in page.headers.get(
                    "content-security-policy", ""
                )
            else:
                assert page.status_code == 503  # not built: it says how (make web)

        process.send_signal(signal.SIGINT)
        process.wait(timeout=120)
        reader.join(timeout=10)
    finally:
        if process.poll() is None:
            process.kill()
    output = "".join(lines)
    assert process.returncode == 130, output[-4000:]
    assert "nothing left running" in output
    assert output.count(key) == 1  # shown once
    assert [pid for pid in report["pids"] if _alive(pid)] == []
    assert _survivors(mark) == []


def test_ctrl_c_while_starting_stops_what_had_started() -> None:
    mark = uuid.uuid4().hex
    process = subprocess.Popen(
        [*PLATFORM, "--no-plan"],
        cwd=REPO,
        env=_env(mark),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        assert process.stdout is not None
        for line in process.stdout:  # interrupt once the database is up, before the apps
            if "PostgreSQL" in line:
                break
        assert _survivors(mark), "the broker and PostgreSQL should be running by now"
        process.send_signal(signal.SIGINT)
        output, _ = process.communicate(timeout=120)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 130, output[-4000:]
    assert "nothing left running" in output
    assert _survivors(mark) == []
