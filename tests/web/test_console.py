"""The console as a person uses it, in chromium, against the real stack (tests/web/conftest.py).

Each test also checks that the page logged no errors (the `watched_page` fixture), and the
accessibility test runs axe-core on every main view.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest
from playwright.sync_api import expect

from apps.events_api.keys import DEFAULT_SCOPES
from tests.apps.consumer_harness import wait_until
from tests.web.conftest import PageWatch, Stack, axe_violations

WebPage = tuple[Any, PageWatch]


def sign_in(page: Any, stack: Stack, key: str) -> None:
    page.goto(f"{stack.url}/console/")
    page.get_by_label("API key").fill(key)
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_text("Signed in")).to_be_visible()
    expect(page.get_by_role("status").filter(has_text="Live")).to_be_visible()


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def api_tasks(stack: Stack, key: str) -> list[dict[str, Any]]:
    response = httpx.get(f"{stack.url}/api/v1/tasks", params={"limit": 100}, headers=bearer(key))
    assert response.status_code == 200
    return list(response.json()["items"])


def create_tasks(stack: Stack, key: str, *bodies: dict[str, Any]) -> None:
    """Tasks made through the API, not the form: the state a test starts from."""
    for body in bodies:
        response = httpx.post(f"{stack.url}/api/v1/tasks", json=body, headers=bearer(key))
        assert response.status_code == 201, response.text


def feed_items(page: Any) -> Any:
    """The activity entries (each holds its own list of progress steps)."""
    return page.get_by_role("list", name="Activity").locator(":scope > li")


def new_task_form(page: Any) -> Any:
    return page.get_by_role("form", name="New task")


def fill_in(form: Any, values: dict[str, str]) -> None:
    """Fill a form's controls by their labels, in order: a select gets the option of that
    value, any other control the text."""
    for label, value in values.items():
        control = form.get_by_label(label)
        if control.evaluate("element => element.tagName") == "SELECT":
            control.select_option(value)
        else:
            control.fill(value)


def task_item(page: Any, title: str) -> Any:
    return page.get_by_role("list", name="Tasks").get_by_role("listitem", name=title, exact=True)


def test_a_wrong_key_is_refused_clearly_and_the_key_never_leaves_the_tab(
    watched_page: WebPage, stack: Stack
) -> None:
    page, watch = watched_page
    watch.expect_http_errors(401)
    page.goto(f"{stack.url}/")  # redirects to the console
    expect(page).to_have_url(f"{stack.url}/console/")
    page.get_by_label("API key").fill("evk_not-a-real-key")
    page.get_by_role("button", name="Sign in").click()
    error = page.get_by_role("alert")
    expect(error).to_have_text("That API key was not accepted (invalid API key).")
    expect(page.get_by_label("API key")).to_have_attribute("aria-invalid", "true")
    assert page.evaluate("() => sessionStorage.length") == 0

    key = stack.create_key()
    sign_in(page, stack, key)
    assert page.evaluate("() => Object.values(sessionStorage)") == [key]
    page.reload()  # the tab keeps the session...
    expect(page.get_by_text("Signed in")).to_be_visible()
    page.get_by_role("button", name="Sign out").click()  # ...until signing out
    expect(page.get_by_label("API key")).to_be_visible()
    assert page.evaluate("() => sessionStorage.length") == 0
    assert page.evaluate("() => localStorage.length") == 0
    assert page.context.cookies() == []
    assert not [u for u in watch.urls if key in u], "the key appeared in a URL"
    assert not [m for m in watch.messages if key in m], "the key was logged"


def test_create_edit_complete_and_delete_a_task(watched_page: WebPage, stack: Stack) -> None:
    page, _ = watched_page
    key = stack.create_key()
    sign_in(page, stack, key)
    expect(page.get_by_text("No tasks yet. Create the first one above.")).to_be_visible()

    form = new_task_form(page)
    fill_in(
        form,
        {
            "Title": "Write the runbook",
            "Priority": "high",
            "Due": "2031-03-04T09:30",
            "Tags": "docs, ops",
            "Description": "For the on-call rotation",
        },
    )
    form.get_by_role("button", name="Create task").click()

    item = task_item(page, "Write the runbook")
    expect(item).to_contain_text("High")
    expect(item).to_contain_text("#docs")
    expect(item).to_contain_text("#ops")
    expect(item).to_contain_text("To do")
    expect(item).to_contain_text("4 Mar 2031")
    (stored,) = api_tasks(stack, key)
    assert stored["priority"] == "high" and stored["tags"] == ["docs", "ops"]
    assert stored["due_at"].startswith("2031-03-04T09:30:00")  # the browser runs in UTC

    item.get_by_role("button", name="Edit").click()
    edit = page.get_by_role("form", name="Edit “Write the runbook”")
    fill_in(edit, {"Title": "Write the on-call runbook", "Status": "in_progress"})
    edit.get_by_role("button", name="Save changes").click()
    item = task_item(page, "Write the on-call runbook")
    expect(item).to_contain_text("In progress")
    expect(item).to_contain_text("High")  # PUT replaces: the form sent every field back
    (stored,) = api_tasks(stack, key)
    assert stored["version"] == 2 and stored["status"] == "in_progress"
    assert stored["description"] == "For the on-call rotation"

    item.get_by_role("button", name="Complete").click()
    expect(item).to_contain_text("Done")
    expect(item.get_by_role("button", name="Complete")).to_have_count(0)
    assert api_tasks(stack, key)[0]["status"] == "done"

    item.get_by_role("button", name="Delete").click()
    item.get_by_role("button", name="Confirm delete").click()
    expect(task_item(page, "Write the on-call runbook")).to_have_count(0)
    expect(page.get_by_text("No tasks yet.")).to_be_visible()
    assert api_tasks(stack, key) == []
    # The live feed saw every change, newest first.
    feed = feed_items(page)
    expect(feed).to_have_count(4)
    expect(feed.first).to_contain_text("Task deleted")


def test_api_field_errors_appear_next_to_their_fields(watched_page: WebPage, stack: Stack) -> None:
    page, watch = watched_page
    watch.expect_http_errors(422)
    sign_in(page, stack, stack.create_key())
    form = new_task_form(page)
    # The API's limits are 200 characters a title, 50 a tag; the form has none.
    fill_in(form, {"Title": "t" * 201, "Tags": "ok, " + "x" * 51})
    form.get_by_role("button", name="Create task").click()

    title = form.get_by_label("Title")
    expect(title).to_have_attribute("aria-invalid", "true")
    described = title.get_attribute("aria-describedby")
    assert described, "the title input does not point at its error"
    title_error = page.locator(f"#{re.escape(described.split()[-1])}")
    expect(title_error).to_have_text(re.compile("at most 200 characters"))
    tags_error = form.locator(".field", has=page.get_by_label("Tags")).locator(".field-error")
    expect(tags_error).to_have_text(re.compile(r"at most 50 characters \(item 2\)"))
    expect(form.get_by_label("Priority")).to_have_attribute("aria-invalid", "false")

    event_form = page.get_by_role("form", name="Send an event")
    event_form.get_by_label("Message").fill("no category")
    event_form.get_by_role("button", name="Send event").click()
    category = event_form.get_by_label("Category")
    expect(category).to_have_attribute("aria-invalid", "true")
    category_field = event_form.locator(".field", has=page.get_by_label("Category"))
    expect(category_field.locator(".field-error")).to_have_text(re.compile("at least 1 character"))


def test_search_filter_and_sort_tasks(watched_page: WebPage, stack: Stack) -> None:
    page, _ = watched_page
    key = stack.create_key()
    create_tasks(
        stack,
        key,
        {"title": "Renew TLS certificate", "priority": "urgent", "tags": ["ops"],
         "due_at": "2031-01-10T12:00:00Z"},
        {"title": "Plan the offsite", "priority": "low", "tags": ["team"], "status": "done",
         "due_at": "2031-02-10T12:00:00Z"},
        {"title": "Rotate database passwords", "priority": "high", "tags": ["ops", "security"],
         "description": "quarterly", "status": "in_progress"},
        {"title": "Update the wiki", "priority": "medium", "tags": ["docs"],
         "due_at": "2031-01-20T12:00:00Z"},
    )  # fmt: skip
    sign_in(page, stack, key)
    items = page.get_by_role("list", name="Tasks").get_by_role("listitem")
    expect(items).to_have_count(4)
    search = page.get_by_role("search")

    def titles() -> list[str]:
        return [t.strip() for t in items.locator(".task-title").all_inner_texts()]

    search.get_by_label("Search").fill("QUARTERLY")  # matches the description, any case
    expect(items).to_have_count(1)
    assert titles() == ["Rotate database passwords"]
    search.get_by_label("Search").fill("")

    search.get_by_label("Tag").select_option("ops")
    expect(items).to_have_count(2)
    search.get_by_label("Priority").select_option("urgent")
    expect(items).to_have_count(1)
    assert titles() == ["Renew TLS certificate"]
    search.get_by_role("button", name="Clear filters").click()
    expect(items).to_have_count(4)

    search.get_by_label("Status").select_option("done")
    expect(items).to_have_count(1)
    assert titles() == ["Plan the offsite"]
    search.get_by_label("Status").select_option("")

    search.get_by_label("Due from").fill("2031-01-15")
    search.get_by_label("Due to").fill("2031-02-28")
    expect(items).to_have_count(2)
    assert titles() == ["Plan the offsite", "Update the wiki"]
    search.get_by_role("button", name="Clear filters").click()

    search.get_by_label("Sort").select_option("priority")
    # The list is re-queried (the API sorts): wait for the new order, not just four items.
    expect(items.locator(".task-title")).to_have_text(
        [
            "Renew TLS certificate",
            "Rotate database passwords",
            "Update the wiki",
            "Plan the offsite",
        ]
    )
    search.get_by_label("Sort").select_option("title")
    expect(items.first).to_contain_text("Plan the offsite")
    search.get_by_label("Search").fill("nothing like this")
    expect(page.get_by_text("No task matches these filters.")).to_be_visible()


def test_reminders_recurrence_and_the_audit_trail_of_a_task(
    watched_page: WebPage, stack: Stack, screenshot_dir: Path
) -> None:
    """A task with reminders and a rule, made in the form; completing it brings the next
    instance; its history is the audit trail (a key with audit:read)."""
    page, _ = watched_page
    sign_in(page, stack, stack.create_key(scopes=(*DEFAULT_SCOPES, "audit:read")))
    form = new_task_form(page)
    fill_in(
        form,
        {
            "Title": "Water the plants",
            "Due": "2031-05-05T08:00",
            "Reminders": "60, 10",
            "Repeats": "FREQ=WEEKLY;BYDAY=MO",
            "Time zone": "Europe/Berlin",
        },
    )
    form.get_by_role("button", name="Create task").click()
    items = page.get_by_role("list", name="Tasks").get_by_role("listitem")
    expect(items).to_have_count(1)
    first = items.first
    expect(first).to_contain_text("Reminders: 1 h before, 10 min before")
    expect(first).to_contain_text("Repeats: FREQ=WEEKLY;BYDAY=MO")
    first.get_by_role("button", name="Complete").click()
    expect(items).to_have_count(2)  # the next Monday's instance
    due = [t.strip() for t in items.locator(".due").all_inner_texts()]
    assert due == ["5 May 2031, 08:00", "12 May 2031, 08:00"], due

    # A rule the API refuses shows its reason under the field.
    fill_in(
        form,
        {
            "Title": "Never",
            "Due": "2031-05-05T08:00",
            "Repeats": "FREQ=YEARLY;BYMONTH=2;BYMONTHDAY=30",
        },
    )
    watched_page[1].expect_http_errors(422)
    form.get_by_role("button", name="Create task").click()
    rule_field = form.locator(".field", has=page.get_by_label("Repeats"))
    expect(rule_field.locator(".field-error")).to_contain_text("matches no date")
    fill_in(form, {"Repeats": "", "Title": ""})

    with psycopg.connect(stack.database_url) as conn:
        task_id = conn.execute(
            "SELECT id::text FROM tasks WHERE title = 'Water the plants' ORDER BY created_at"
        ).fetchone()[0]
    assert wait_until(lambda: _audited_count(stack, task_id) >= 2, 30), (
        "audit did not record the task's changes"
    )
    first.get_by_role("button", name="History").click()
    trail = first.get_by_role("list", name="Audit trail")
    expect(trail.get_by_role("listitem")).to_have_count(2)
    expect(trail).to_contain_text("Created")
    expect(trail).to_contain_text("status done")
    page.screenshot(path=str(screenshot_dir / "console-recurring-task.png"), full_page=True)


def _audited_count(stack: Stack, task_id: str) -> int:
    with psycopg.connect(stack.database_url) as conn:
        row = conn.execute(
            "SELECT count(*) FROM audit_log WHERE subject = %s", (task_id,)
        ).fetchone()
    return int(row[0]) if row else 0


def test_without_audit_read_the_history_says_so(watched_page: WebPage, stack: Stack) -> None:
    page, watch = watched_page
    key = stack.create_key()
    create_tasks(stack, key, {"title": "Quiet"})
    sign_in(page, stack, key)
    watch.expect_http_errors(403)
    item = task_item(page, "Quiet")
    item.get_by_role("button", name="History").click()
    expect(item.get_by_role("status")).to_contain_text("audit:read scope")


def test_a_sent_event_appears_live_then_delivered_and_audited(
    watched_page: WebPage, stack: Stack, screenshot_dir: Path
) -> None:
    page, _ = watched_page
    key = stack.create_key()
    sign_in(page, stack, key)
    form = page.get_by_role("form", name="Send an event")
    fill_in(
        form,
        {
            "Category": "signup",
            "Message": "Ada signed up for the pro plan",
            "Field 1 name": "plan",
            "Field 1 value": "pro",
        },
    )
    form.get_by_role("button", name="Send event").click()
    expect(page.get_by_role("status").filter(has_text="Event accepted")).to_be_visible()

    activity = feed_items(page).first
    expect(activity).to_contain_text("signup: Ada signed up for the pro plan")
    expect(activity).to_contain_text("Accepted")
    expect(activity).to_contain_text("Delivered: webhook", timeout=60_000)
    expect(activity).to_contain_text("Audited", timeout=60_000)
    expect(activity).not_to_contain_text("Not audited yet")
    delivered = [r for r in stack.sink.requests if r.path == "/hooks/console"]
    assert any("Ada signed up" in r.body.decode() for r in delivered)


def test_the_page_policy_blocks_inline_script(watched_page: WebPage, stack: Stack) -> None:
    page, watch = watched_page
    response = page.goto(f"{stack.url}/console/")
    assert response is not None
    assert "script-src 'self'" in response.headers["content-security-policy"]
    ran = page.evaluate(
        """() => {
            try {
                const s = document.createElement('script');
                s.textContent = 'window.__inline = 1';
                document.body.append(s);
            } catch (e) { return 'refused: ' + e.name; }
            return window.__inline === 1 ? 'ran' : 'blocked';
        }"""
    )
    assert ran != "ran"
    watch.errors.clear()  # the refusal is logged as an error: that is the point here


@pytest.mark.parametrize("view", ["sign-in", "console", "field-errors", "editing"])
def test_main_views_have_no_serious_accessibility_violations(
    watched_page: WebPage, stack: Stack, screenshot_dir: Path, view: str
) -> None:
    page, watch = watched_page
    key = stack.create_key()
    if view == "sign-in":
        page.goto(f"{stack.url}/console/")
        expect(page.get_by_label("API key")).to_be_visible()
    else:
        _populate(stack, key)
        sign_in(page, stack, key)
        expect(page.get_by_role("list", name="Tasks").get_by_role("listitem")).to_have_count(5)
        expect(feed_items(page).first).to_contain_text("Audited", timeout=60_000)
    if view == "field-errors":
        watch.expect_http_errors(422)
        form = new_task_form(page)
        form.get_by_label("Title").fill("x" * 201)
        form.get_by_role("button", name="Create task").click()
        expect(form.get_by_role("alert").first).to_be_visible()
    if view == "editing":
        task_item(page, "Rotate database passwords").get_by_role("button", name="Edit").click()
        expect(page.get_by_role("form", name=re.compile("^Edit"))).to_be_visible()
    page.screenshot(path=str(screenshot_dir / f"console-{view}.png"), full_page=True)
    assert axe_violations(page) == []


def _populate(stack: Stack, key: str) -> None:
    """A realistic screen: tasks of every priority and status, events delivered and audited."""
    create_tasks(
        stack,
        key,
        {"title": "Renew TLS certificate", "priority": "urgent", "tags": ["ops"],
         "due_at": "2026-01-10T12:00:00Z", "description": "Expires at the end of the week"},
        {"title": "Rotate database passwords", "priority": "high", "tags": ["ops", "security"],
         "status": "in_progress", "due_at": "2031-02-01T09:00:00Z"},
        {"title": "Update the on-call wiki", "priority": "medium", "tags": ["docs"]},
        {"title": "Plan the team offsite", "priority": "low", "tags": ["team"], "status": "done"},
        {"title": "Review the Q3 budget", "priority": "medium", "status": "cancelled"},
    )  # fmt: skip
    for category, message in (
        ("deploy", "events-api 1.4.2 rolled out to staging"),
        ("signup", "Ada signed up for the pro plan"),
    ):
        response = httpx.post(
            f"{stack.url}/api/v1/events",
            json={"category": category, "message": message, "fields": {"env": "staging"}},
            headers=bearer(key),
        )
        assert response.status_code == 202
