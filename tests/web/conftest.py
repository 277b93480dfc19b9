"""The web console in a real browser: Debian's chromium driven by Playwright, against the real
events-api (serving the built console), notifier and audit on the real PostgreSQL and Tansu,
all apps on ONE database (the deployed shape).

Skipped, with the reason, where chromium or the built bundle is missing (`make test` installs
chromium when it can and builds the bundle before pytest runs).
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from apps.events_api.settings import CONSOLE_DIR
from platform_cli.embedded import KafkaBroker, PostgresServer
from tests.apps.app_env import app_env
from tests.apps.conftest import TopicNames, kafka, migrated_events_api_settings, postgres
from tests.apps.consumer_harness import ConsumerProcess, wait_until
from tests.apps.live_server import live_server
from tests.apps.webhook_sink import WebhookSink, webhook_sink

CHROMIUM = Path(os.environ.get("CHROMIUM", "/usr/bin/chromium"))
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--headless",
    "--disable-gpu",
    # This machine's network is closed: without these, chromium's own background connections
    # are refused by the dozen and show up as noise.
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
REPO = Path(__file__).resolve().parents[2]
AXE = REPO / "apps" / "web" / "node_modules" / "axe-core" / "axe.min.js"
VIEWPORT = {"width": 1360, "height": 900}
__all__ = ["kafka", "postgres"]  # the real broker and database fixtures of tests/apps


def _skip_reason() -> str | None:
    if not CHROMIUM.exists():
        return f"browser leg skipped: no chromium at {CHROMIUM} (apt-get install -y chromium)"
    try:
        import playwright  # noqa: F401
    except ImportError:
        return "browser leg skipped: playwright is not installed (pip install -e '.[dev]')"
    if not (CONSOLE_DIR / "index.html").is_file():
        return (
            f"browser leg skipped: the console is not built ({CONSOLE_DIR} has no index.html); "
            "run npm --prefix apps/web ci && npm --prefix apps/web run build"
        )
    if not AXE.is_file():
        return f"browser leg skipped: axe-core not installed at {AXE} (npm --prefix apps/web ci)"
    return None


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    reason = _skip_reason()
    if reason is None:
        return
    marker = pytest.mark.skip(reason=reason)
    for item in items:
        if Path(str(item.fspath)).is_relative_to(Path(__file__).parent):
            item.add_marker(marker)


@dataclass
class Stack:
    """events-api (serving the console) + notifier + audit on one database."""

    url: str
    database_url: str
    sink: WebhookSink
    notifier: ConsumerProcess
    audit: ConsumerProcess

    def create_key(self, scopes: tuple[str, ...] | None = None) -> str:
        import psycopg

        from apps.events_api.keys import DEFAULT_SCOPES, create_key

        with psycopg.connect(self.database_url) as conn:
            _, plaintext = create_key(
                conn,
                f"web-{uuid.uuid4().hex[:8]}",
                1_000_000,
                100_000,
                scopes=scopes or DEFAULT_SCOPES,
            )
        return plaintext


@pytest.fixture(scope="module")
def stack(
    kafka: KafkaBroker, postgres: PostgresServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Stack]:
    from apps.audit.cli import MIGRATIONS as AUDIT_MIGRATIONS
    from apps.common.db import migrate
    from apps.events_api.app import create_app
    from apps.notifier.cli import MIGRATIONS as NOTIFIER_MIGRATIONS

    name = f"web_{uuid.uuid4().hex[:10]}"
    database_url = postgres.create_database(name)
    suffix = uuid.uuid4().hex[:8]
    topics = TopicNames.create(kafka.bootstrap)
    settings = migrated_events_api_settings(
        kafka.bootstrap,
        database_url,
        topics,
        "events-api-web",
        stream_poll_s=0.2,
        stream_status_poll_s=0.3,
    )
    migrate(database_url, "notifier", NOTIFIER_MIGRATIONS)
    migrate(database_url, "audit", AUDIT_MIGRATIONS)
    logs = tmp_path_factory.mktemp("web-stack")
    common = {
        **app_env(kafka.bootstrap, database_url, topics=topics),
    }
    with webhook_sink() as sink:
        notifier = ConsumerProcess(
            "notifier",
            {
                **common,
                "DEAD_LETTER_TOPIC": topics.notifier_dlq,
                "CONSUMER_GROUP": f"notifier-{suffix}",
                "NOTIFIER_WEBHOOK_URL": f"{sink.url}/hooks/console",
            },
            logs / "notifier.log",
        ).start()
        audit = ConsumerProcess(
            "audit",
            {**common, "DEAD_LETTER_TOPIC": topics.audit_dlq, "CONSUMER_GROUP": f"audit-{suffix}"},
            logs / "audit.log",
        ).start()
        try:
            assert wait_until(lambda: notifier.ready() and audit.ready(), 90), (
                notifier.log()[-2000:] + audit.log()[-2000:]
            )
            with live_server(create_app(settings)) as url:
                yield Stack(url, database_url, sink, notifier, audit)
        finally:
            notifier.stop_quietly()
            audit.stop_quietly()
    postgres.drop_database(name)


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield launched
        launched.close()


@dataclass
class PageWatch:
    """What the page said and asked for: console errors, page errors, request URLs."""

    errors: list[str] = field(default_factory=list)
    messages: list[str] = field(default_factory=list)
    urls: list[str] = field(default_factory=list)
    expected_statuses: set[int] = field(default_factory=set)

    def expect_http_errors(self, *statuses: int) -> None:
        """Chromium logs a failed fetch (4xx) as a console error; a test that provokes one on
        purpose (wrong key, invalid field) says which status, and only that is excused."""
        self.expected_statuses.update(statuses)

    def unexpected_errors(self) -> list[str]:
        excused = tuple(
            f"Failed to load resource: the server responded with a status of {s}"
            for s in self.expected_statuses
        )
        return [e for e in self.errors if not e.startswith(excused)]


@pytest.fixture
def watched_page(browser: Any) -> Iterator[tuple[Any, PageWatch]]:
    context = browser.new_context(viewport=VIEWPORT, locale="en-GB", timezone_id="UTC")
    page = context.new_page()
    page.set_default_timeout(20_000)
    watch = PageWatch()
    page.on("console", lambda m: watch.messages.append(m.text))
    page.on("console", lambda m: watch.errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: watch.errors.append(f"page error: {e}"))
    page.on("request", lambda r: watch.urls.append(r.url))
    try:
        yield page, watch
        assert watch.unexpected_errors() == [], "the console logged errors"
    finally:
        context.close()


@pytest.fixture(scope="session")
def screenshot_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """docs/images when CONSOLE_SCREENSHOTS=1 (refreshing the README's pictures), else a
    temporary folder: a test run never rewrites committed files by itself."""
    if os.environ.get("CONSOLE_SCREENSHOTS") == "1":
        target = REPO / "docs" / "images"
        target.mkdir(parents=True, exist_ok=True)
        return target
    return tmp_path_factory.mktemp("screenshots")


def axe_violations(page: Any, *, impacts: tuple[str, ...] = ("serious", "critical")) -> list[str]:
    """Run axe-core (the npm package, evaluated into the page over the DevTools protocol, which
    the page's CSP does not apply to) and return the violations of the given impacts."""
    page.evaluate(AXE.read_text(encoding="utf-8"))
    result = page.evaluate("async () => await axe.run(document, { resultTypes: ['violations'] })")
    return [
        f"{v['id']} ({v['impact']}): {v['help']} at {[n['target'] for n in v['nodes']][:3]}"
        for v in result["violations"]
        if v["impact"] in impacts
    ]
