"""`platform image-scan` against moto's ECR: images pushed, scanned, findings read and judged.

moto serves `describe-image-scan-findings` (paginated): by default one HIGH finding
(CVE-9999-9999 in package `moto_fake`) for a scanned image, or the exact response configured
through its API (`POST /moto-api/static/ecr/scan-finding-results`). The configured responses
below follow the DescribeImageScanFindings response of the Amazon ECR API Reference:
`imageScanStatus` {status, description}; `imageScanFindings.findings[]` (basic scanning:
name, uri, severity, attributes[{key, value}] with `package_name`) and `enhancedFindings[]`
(Inspector: severity, title, packageVulnerabilityDetails {vulnerabilityId,
vulnerablePackages[{name, version}]}), and `findingSeverityCounts`.
"""

from __future__ import annotations

import contextlib
import json
import uuid
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import boto3
import httpx
import pytest
from typer.testing import CliRunner

from infra.contracts import APP_NAMES
from platform_cli import image_scan
from platform_cli.main import app

REGION = "eu-west-1"
PREFIX = (
    "event-platform"  # images.json: 123456789012.dkr.ecr.eu-west-1.amazonaws.com/event-platform
)


def _ecr(endpoint: str) -> Any:
    return boto3.client(
        "ecr",
        region_name=REGION,
        endpoint_url=endpoint,
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )


def _push(endpoint: str, tag: str, scan: bool = True) -> None:
    ecr = _ecr(endpoint)
    for app_name in APP_NAMES:
        repository = f"{PREFIX}/{app_name}"
        with contextlib.suppress(ecr.exceptions.RepositoryAlreadyExistsException):
            ecr.create_repository(
                repositoryName=repository,
                imageTagMutability="IMMUTABLE",
                imageScanningConfiguration={"scanOnPush": True},
            )
        manifest = {
            "schemaVersion": 2,
            "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
            "config": {
                "digest": f"sha256:{uuid.uuid4().hex * 2}",
                "size": 1,
                "mediaType": "application/vnd.docker.container.image.v1+json",
            },
            "layers": [],
        }
        ecr.put_image(repositoryName=repository, imageManifest=json.dumps(manifest), imageTag=tag)
        if scan:
            ecr.start_image_scan(repositoryName=repository, imageId={"imageTag": tag})


def _configure(
    endpoint: str,
    tag: str,
    app_name: str,
    status: str = "COMPLETE",
    findings: list[dict] | None = None,
    enhanced: list[dict] | None = None,
) -> None:
    result = {
        "registryId": "123456789012",
        "repositoryName": f"{PREFIX}/{app_name}",
        "imageId": {"imageTag": tag},
        "imageScanStatus": {"status": status, "description": "configured by the test"},
        "imageScanFindings": {
            "findings": findings or [],
            "enhancedFindings": enhanced or [],
            "findingSeverityCounts": {},
        },
    }
    response = httpx.post(
        f"{endpoint}/moto-api/static/ecr/scan-finding-results",
        json={"results": [result], "region": REGION},
    )
    response.raise_for_status()


def _clean(endpoint: str, tag: str, *, except_app: str = "") -> None:
    for app_name in APP_NAMES:
        if app_name != except_app:
            _configure(endpoint, tag, app_name)


def _basic(cve: str, severity: str, package: str) -> dict:
    return {
        "name": cve,
        "uri": f"https://cve.mitre.org/cgi-bin/cvename.cgi?name={cve}",
        "severity": severity,
        "attributes": [
            {"key": "package_name", "value": package},
            {"key": "package_version", "value": "1.0"},
        ],
    }


def _gate(
    tmp_path: Path, tag: str, entries: list[dict] | None = None, *extra: str
) -> tuple[int, str, list[dict]]:
    allow = tmp_path / "allow.yaml"
    allow.write_text(json.dumps({"allow": entries or []}))
    report = tmp_path / "scan.json"
    result = CliRunner().invoke(
        app,
        [
            "image-scan",
            "--env",
            "dev",
            "--tag",
            tag,
            "--allow-list",
            str(allow),
            "--report",
            str(report),
            "--wait-seconds",
            "0.5",
            "--poll-seconds",
            "0.1",
            *extra,
        ],
    )
    verdicts = json.loads(report.read_text()) if report.exists() else []
    return result.exit_code, result.output, verdicts


def _entry(cve: str, package: str | None = None, days: int = 30) -> dict:
    entry = {
        "id": cve,
        "reason": "not reachable: the parser is never fed untrusted input",
        "reviewedBy": "platform-team",
        "expires": str(date.today() + timedelta(days=days)),
    }
    if package:
        entry["package"] = package
    return entry


def _tag() -> str:
    return uuid.uuid4().hex[:12]


def test_clean_images_pass(aws_env: str, tmp_path: Path) -> None:
    tag = _tag()
    _push(aws_env, tag)
    _clean(aws_env, tag)
    code, output, verdicts = _gate(tmp_path, tag)
    assert code == 0, output
    assert [v["status"] for v in verdicts] == ["COMPLETE"] * len(APP_NAMES)
    assert all(v["blocking"] == [] for v in verdicts)


def test_an_unreviewed_high_finding_refuses_promotion(aws_env: str, tmp_path: Path) -> None:
    tag = _tag()
    _push(aws_env, tag)
    _clean(aws_env, tag, except_app="notifier")  # notifier gets moto's default HIGH finding
    code, output, verdicts = _gate(tmp_path, tag)
    assert code == 1, output
    [blocked] = [v for v in verdicts if v["blocking"]]
    assert blocked["image"].endswith(f"/notifier:{tag}")
    assert blocked["blocking"] == ["HIGH CVE-9999-9999 in moto_fake: not on the allow-list"]
    assert "promotion refused" in output


def test_a_reviewed_high_finding_passes_until_its_entry_expires(
    aws_env: str, tmp_path: Path
) -> None:
    tag = _tag()
    _push(aws_env, tag)
    _clean(aws_env, tag, except_app="audit")
    code, output, verdicts = _gate(tmp_path, tag, [_entry("CVE-9999-9999", "moto_fake")])
    assert code == 0, output
    [audit] = [v for v in verdicts if v["image"].endswith(f"/audit:{tag}")]
    assert audit["allowed"] and "allowed until" in audit["allowed"][0]

    code, output, verdicts = _gate(tmp_path, tag, [_entry("CVE-9999-9999", "moto_fake", -1)])
    assert code == 1, output
    assert any("expired on" in line for v in verdicts for line in v["blocking"])
    # An entry for another package does not cover this one.
    code, _, _ = _gate(tmp_path, tag, [_entry("CVE-9999-9999", "openssl")])
    assert code == 1


def test_critical_is_refused_even_when_listed(aws_env: str, tmp_path: Path) -> None:
    tag = _tag()
    _push(aws_env, tag)
    _clean(aws_env, tag, except_app="events-api")
    enhanced = [
        {
            "severity": "CRITICAL",
            "title": "CVE-2024-0001 - libexample",
            "status": "ACTIVE",
            "packageVulnerabilityDetails": {
                "vulnerabilityId": "CVE-2024-0001",
                "vulnerablePackages": [{"name": "libexample", "version": "1.2.3"}],
            },
        }
    ]
    _configure(
        aws_env,
        tag,
        "events-api",
        findings=[_basic("CVE-2024-0002", "MEDIUM", "zlib")],
        enhanced=enhanced,
    )
    code, output, verdicts = _gate(tmp_path, tag, [_entry("CVE-2024-0001")])
    assert code == 1, output
    [blocked] = [v for v in verdicts if v["blocking"]]
    assert blocked["blocking"] == [
        "CRITICAL CVE-2024-0001 in libexample: CRITICAL is never allowed"
    ]
    assert blocked["counts"] == {"MEDIUM": 1, "CRITICAL": 1}  # MEDIUM does not block


def test_an_unscanned_or_unfinished_scan_refuses_promotion(aws_env: str, tmp_path: Path) -> None:
    tag = _tag()
    _push(aws_env, tag, scan=False)
    code, output, verdicts = _gate(tmp_path, tag)
    assert code == 1, output
    assert {v["status"] for v in verdicts} == {"NOT_SCANNED"}

    tag = _tag()
    _push(aws_env, tag)
    _clean(aws_env, tag, except_app="audit")
    _configure(aws_env, tag, "audit", status="IN_PROGRESS")
    code, output, verdicts = _gate(tmp_path, tag)
    assert code == 1, output
    [pending] = [v for v in verdicts if v["blocking"]]
    assert pending["status"] == "IN_PROGRESS"  # waited 0.5 s, then refused


@pytest.mark.parametrize(
    ("entry", "field"),
    [
        (
            {"id": "CVE-9999-9999", "reason": "short", "reviewedBy": "me", "expires": "2030-01-01"},
            "allow.0.reason",
        ),
        (
            {"id": "not-a-cve", "reason": "x" * 30, "reviewedBy": "me", "expires": "2030-01-01"},
            "allow.0.id",
        ),
        (
            {
                "id": "CVE-9999-9999",
                "reason": "x" * 30,
                "reviewedBy": "me",
                "expires": str(date.today() + timedelta(days=400)),
            },
            "allow.0.expires",
        ),
        ({"id": "CVE-9999-9999", "reason": "x" * 30, "reviewedBy": "me"}, "allow.0.expires"),
    ],
)
def test_a_bad_allow_list_names_the_field(tmp_path: Path, entry: dict, field: str) -> None:
    code, output, _ = _gate(tmp_path, _tag(), [entry])
    assert code == 2
    assert field in output


def test_the_committed_allow_list_is_valid() -> None:
    allow = image_scan.load_allow_list(image_scan.ALLOW_LIST_FILE)
    assert all(entry.expires >= date.today() for entry in allow.allow), "expired entries: prune"


def test_registry_parts_refuses_a_non_ecr_registry() -> None:
    assert image_scan.registry_parts(
        "123456789012.dkr.ecr.eu-west-1.amazonaws.com/event-platform"
    ) == ("123456789012", "eu-west-1", "event-platform")
    with pytest.raises(image_scan.ScanGateError, match="not an ECR registry"):
        image_scan.registry_parts("localhost:5001/event-platform")
