"""Drift detection: the summary parser on realistic `pulumi preview --json` documents, the
`platform drift report` exit codes and webhook post, `drift.sh` (dry-run, and for real with a
stand-in `pulumi` that prints those documents), and the scheduled job's declaration.

The preview documents' shape and sources: tests/delivery/data/SOURCE.md.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from platform_cli.drift import DRIFT_EXIT, markdown, parse_preview
from platform_cli.main import app
from tests.delivery.test_jenkins_stages import BACKEND, REPO, STAGES, run_stage
from tests.delivery.test_pipeline_credentials import _Recorder, recorder  # noqa: F401

DATA = Path(__file__).with_name("data")
DRIFT_FILE = REPO / "jenkins" / "Jenkinsfile.drift"


def _doc(name: str) -> dict:
    return json.loads((DATA / name).read_text())


def test_the_parser_names_each_drifted_resource_and_property() -> None:
    report = parse_preview(_doc("preview-drift.json"), "dev")
    assert report.drifted
    summary = {
        r.name: (r.type, r.op, [(p.path, p.kind, p.cloud, p.declared) for p in r.properties])
        for r in report.resources
    }
    assert summary == {
        "database-sg": (
            "aws:ec2/securityGroup:SecurityGroup",
            "update",
            [
                (
                    "ingress[1]",
                    "delete",
                    '{"cidrBlocks": ["203.0.113.7/32"], '
                    '"description": "debug from the office", "f...',
                    "(none)",
                )
            ],
        ),
        "network-flow-logs": (
            "aws:cloudwatch/logGroup:LogGroup",
            "update",
            [("retentionInDays", "update", "90", "14")],
        ),
        "audit-archive-bucket": (
            "aws:s3/bucket:Bucket",
            "update",
            [
                ("tags.owner", "delete", "someone@example.com", "(none)"),
                ("tagsAll.owner", "delete", "(none)", "(none)"),
            ],
        ),
        "network-flow-log": ("aws:ec2/flowLog:FlowLog", "create", []),
    }
    assert report.change_summary == {"create": 1, "same": 146, "update": 3}
    assert report.errors == ()  # the warning is not an error


def test_the_markdown_summary_lists_resources_and_properties() -> None:
    text = markdown(parse_preview(_doc("preview-drift.json"), "dev"))
    assert text.startswith("**dev**: 4 resource(s) differ from the program")
    assert "- `aws:cloudwatch/logGroup:LogGroup` **network-flow-logs**: update" in text
    assert "  - `retentionInDays` (update): 90 -> 14" in text
    assert "Change summary: 1 create, 146 same, 3 update." in text
    assert markdown(parse_preview(_doc("preview-clean.json"), "dev")) == (
        "**dev**: no drift, the cloud matches the program."
    )


def test_diff_reasons_stand_in_when_there_is_no_detailed_diff() -> None:
    doc = _doc("preview-drift.json")
    step = doc["steps"][2]
    del step["detailedDiff"]
    [logs] = [r for r in parse_preview(doc, "dev").resources if r.name == "network-flow-logs"]
    assert [(p.path, p.cloud, p.declared) for p in logs.properties] == [
        ("retentionInDays", "90", "14")
    ]


def _report(
    tmp_path: Path, document: str | None, preview_exit: int = 0, env: dict[str, str] | None = None
) -> tuple[int, str, Path]:
    path = tmp_path / "drift.json"
    if document is not None:
        path.write_text(document)
    md = tmp_path / "drift.md"
    result = CliRunner().invoke(
        app,
        [
            "drift",
            "report",
            str(path),
            "--stack",
            "dev",
            "--preview-exit",
            str(preview_exit),
            "--markdown",
            str(md),
        ],
        env=env or {"DRIFT_WEBHOOK_URL": ""},
    )
    return result.exit_code, result.output, md


def test_report_exit_codes(tmp_path: Path) -> None:
    drift = (DATA / "preview-drift.json").read_text()
    clean = (DATA / "preview-clean.json").read_text()
    # --expect-no-changes makes pulumi exit non-zero on drift; the document still decides.
    code, output, md = _report(tmp_path, drift, preview_exit=255)
    assert code == DRIFT_EXIT, output
    assert "network-flow-logs" in md.read_text()
    assert _report(tmp_path, clean)[0] == 0
    failed = json.dumps(
        {"diagnostics": [{"message": "error: AccessDenied: s3:GetObject", "severity": "error"}]}
    )
    code, output, _ = _report(tmp_path, failed, preview_exit=255)
    assert code == 2 and "AccessDenied" in output
    assert _report(tmp_path, clean, preview_exit=1)[0] == 2
    assert _report(tmp_path, "not json")[0] == 2
    assert _report(tmp_path, None)[0] == 2


def test_drift_is_posted_to_the_webhook(tmp_path: Path, recorder: str) -> None:  # noqa: F811
    code, output, md = _report(
        tmp_path,
        (DATA / "preview-drift.json").read_text(),
        env={"DRIFT_WEBHOOK_URL": f"{recorder}/hooks/drift"},
    )
    assert code == DRIFT_EXIT, output
    [request] = _Recorder.requests
    assert request["path"] == "/hooks/drift"
    assert request["body"] == {"text": md.read_text().rstrip("\n")}


# --- drift.sh ----------------------------------------------------------------------------------


@pytest.mark.parametrize("env", ["dev", "staging", "prod"])
def test_drift_stage_dry_run(env: str) -> None:
    assert run_stage(f"jenkins/stages/drift.sh {env}", PULUMI_BACKEND_URL=BACKEND) == [
        "mkdir -p reports",
        f"pulumi login '{BACKEND}'",
        f"pulumi preview --stack {env} --refresh --expect-no-changes --json --non-interactive "
        f"> reports/drift-{env}.json",
        f".venv/bin/platform drift report reports/drift-{env}.json --stack {env} "
        f"--preview-exit 0 --markdown reports/drift-{env}.md",
    ]


def _fake_pulumi(tmp_path: Path, document: str | None, exit_code: int) -> Path:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    payload = tmp_path / "payload.json"
    script = "#!/bin/sh\n"
    script += 'echo "$@" >> "$(dirname "$0")/calls"\n'
    if document is not None:
        payload.write_text(document)
        script += f'case "$1" in preview) cat "{payload}";; esac\n'
    script += f'case "$1" in preview) echo "progress on stderr" >&2; exit {exit_code};; esac\n'
    (bin_dir / "pulumi").write_text(script)
    (bin_dir / "pulumi").chmod(0o755)
    return bin_dir


@pytest.mark.parametrize(
    ("document", "pulumi_exit", "expected"),
    [("preview-drift.json", 255, 3), ("preview-clean.json", 0, 0), (None, 255, 2)],
)
def test_drift_stage_for_real(
    tmp_path: Path, document: str | None, pulumi_exit: int, expected: int
) -> None:
    text = (DATA / document).read_text() if document else None
    bin_dir = _fake_pulumi(tmp_path, text, pulumi_exit)
    reports = tmp_path / "reports"
    env = {
        "PATH": f"{bin_dir}:{os.environ['PATH']}",
        "HOME": str(tmp_path),
        "PULUMI_BACKEND_URL": BACKEND,
        "REPORTS": str(reports),
        "VENV": str(Path(sys.executable).parent.parent),
        "PYTHONPATH": str(REPO),
    }
    done = subprocess.run(
        ["bash", str(STAGES / "drift.sh"), "dev"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == expected, done.stdout + done.stderr
    calls = (bin_dir / "calls").read_text().splitlines()
    assert calls == [
        f"login {BACKEND}",
        "preview --stack dev --refresh --expect-no-changes --json --non-interactive",
    ]
    if document:
        # stdout only: the progress line on stderr did not corrupt the JSON
        assert json.loads((reports / "drift-dev.json").read_text()) == json.loads(text or "")
    if expected == 3:
        assert "retentionInDays" in (reports / "drift-dev.md").read_text()


def test_the_drift_job_is_scheduled_per_stack_with_read_only_roles() -> None:
    text = DRIFT_FILE.read_text()
    assert re.search(r"triggers \{ cron\('[^']+'\) \}", text)
    calls = re.findall(
        r"sh\(script: '(jenkins/stages/drift\.sh (\w+))', returnStatus: true\)", text
    )
    assert [env for _, env in calls] == ["dev", "staging", "prod"]
    stages = dict(zip(*[iter(re.split(r"stage\('([^']+)'\)", text)[1:])] * 2, strict=True))
    for env in ("dev", "staging", "prod"):
        block = stages[f"Drift {env}"]
        ids = set(re.findall(r"credentialsId: '([^']+)'", block))
        assert ids == {
            f"platform-preview-{env}",
            f"platform-pulumi-backend-{env}",
            "platform-drift-webhook",
        }
        assert "if (rc == 3) { unstable(" in block
        assert "else if (rc != 0) { error(" in block
    assert "platform-deploy-" not in text
