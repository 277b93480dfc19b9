"""The console bundle served by events-api: security headers, caching, and the not-built page."""

from __future__ import annotations

from pathlib import Path

from fastapi.testclient import TestClient

from apps.events_api.routes.console import BUILD_COMMAND
from tests.apps.conftest import EventsApiEnv


def _bundle(root: Path) -> Path:
    (root / "assets").mkdir(parents=True)
    (root / "index.html").write_text(
        '<!doctype html><script type="module" src="/console/assets/index-abc123.js"></script>'
    )
    (root / "assets" / "index-abc123.js").write_text("console.log('x')")
    return root


def test_console_is_served_with_a_strict_policy_and_cache_headers(
    events_api_env: EventsApiEnv, tmp_path: Path
) -> None:
    app = events_api_env.app(console_dir=_bundle(tmp_path / "console"), relay_enabled=False)
    with TestClient(app, follow_redirects=False) as client:
        root = client.get("/")
        assert root.status_code == 307 and root.headers["location"] == "/console/"
        assert client.get("/console").headers["location"] == "/console/"

        page = client.get("/console/")
        assert page.status_code == 200
        assert page.headers["content-type"].startswith("text/html")
        assert "index-abc123.js" in page.text
        policy = page.headers["content-security-policy"]
        directives = dict(d.strip().split(" ", 1) for d in policy.split(";"))
        assert directives["script-src"] == "'self'"  # no 'unsafe-inline', no 'unsafe-eval'
        assert directives["default-src"] == "'none'"
        assert directives["frame-ancestors"] == "'none'"
        assert directives["connect-src"] == "'self'"
        assert page.headers["x-content-type-options"] == "nosniff"
        assert page.headers["x-frame-options"] == "DENY"
        assert page.headers["referrer-policy"] == "no-referrer"
        assert page.headers["cache-control"] == "no-cache"

        asset = client.get("/console/assets/index-abc123.js")
        assert asset.status_code == 200
        assert asset.headers["cache-control"] == "public, max-age=31536000, immutable"
        assert asset.headers["content-security-policy"] == policy

        missing = client.get("/console/assets/nope.js")
        assert missing.status_code == 404
        assert missing.headers["x-content-type-options"] == "nosniff"
        assert client.get("/console/../settings.py").status_code == 404


def test_without_a_bundle_the_console_says_how_to_build_it_and_the_api_still_works(
    events_api_env: EventsApiEnv, tmp_path: Path
) -> None:
    app = events_api_env.app(console_dir=tmp_path / "absent", relay_enabled=False)
    key = events_api_env.create_key()
    with TestClient(app) as client:
        page = client.get("/console/")
        assert page.status_code == 503
        assert BUILD_COMMAND in page.text
        assert page.headers["content-security-policy"].startswith("default-src 'none'")
        listed = client.get("/api/v1/tasks", headers={"Authorization": f"Bearer {key}"})
        assert listed.status_code == 200
