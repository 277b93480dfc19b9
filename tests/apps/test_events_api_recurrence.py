"""Recurring tasks: RRULE + IANA zone, the next instance created when an occurrence is closed.

The rule arithmetic (daylight saving, month ends, COUNT, UNTIL) is checked on the pure
functions; the series behaviour (next instance, carried reminders, edit, stop) through the API
against real PostgreSQL and the broker."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from fastapi.testclient import TestClient

from apps.common.envelope import decode
from apps.events_api import recurrence
from tests.apps.conftest import EventsApiEnv, read_topic

BERLIN = ZoneInfo("Europe/Berlin")
PAST = datetime(2000, 1, 1, tzinfo=UTC)  # "now" far before every series: no skipping


def _series(rule: str, zone: str, start: datetime, n: int, now: datetime = PAST) -> list[datetime]:
    """The first `n` occurrences (UTC) after `start`, as the API computes them one by one."""
    tz = ZoneInfo(zone)
    local = recurrence.local_start(start, tz)
    found, current = [], start
    for _ in range(n):
        nxt = recurrence.next_occurrence(rule, zone, local, current, now)
        if nxt is None:
            break
        found.append(nxt)
        current = nxt
    return found


def test_daily_0900_keeps_local_time_across_both_dst_changes() -> None:
    start = datetime(2026, 3, 28, 9, 0, tzinfo=BERLIN).astimezone(UTC)  # CET, UTC+1
    spring = _series("FREQ=DAILY", "Europe/Berlin", start, 2)
    assert [d.astimezone(BERLIN).hour for d in spring] == [9, 9]
    assert [d.hour for d in spring] == [7, 7]  # CEST from 29 March: 09:00 is 07:00 UTC
    autumn_start = datetime(2026, 10, 24, 9, 0, tzinfo=BERLIN).astimezone(UTC)
    autumn = _series("FREQ=DAILY", "Europe/Berlin", autumn_start, 2)
    assert [d.hour for d in autumn] == [8, 8]  # back to CET on 25 October


def test_a_time_in_the_spring_gap_moves_forward_and_an_ambiguous_one_is_the_first() -> None:
    # 02:30 does not exist in Berlin on 29 March 2026: read with the offset before the gap.
    start = datetime(2026, 3, 28, 2, 30, tzinfo=BERLIN).astimezone(UTC)
    gap, after = _series("FREQ=DAILY", "Europe/Berlin", start, 2)
    assert gap == datetime(2026, 3, 29, 1, 30, tzinfo=UTC)  # = 03:30 CEST
    assert after.astimezone(BERLIN).replace(tzinfo=None) == datetime(2026, 3, 30, 2, 30)
    # 02:30 happens twice on 25 October: the first (CEST, UTC+2) is the one.
    fall_start = datetime(2026, 10, 24, 2, 30, tzinfo=BERLIN).astimezone(UTC)
    (ambiguous,) = _series("FREQ=DAILY", "Europe/Berlin", fall_start, 1)
    assert ambiguous == datetime(2026, 10, 25, 0, 30, tzinfo=UTC)


def test_bymonthday_31_skips_the_months_without_one() -> None:
    start = datetime(2026, 1, 31, 18, 0, tzinfo=UTC)
    months = [d.month for d in _series("FREQ=MONTHLY;BYMONTHDAY=31", "UTC", start, 6)]
    assert months == [3, 5, 7, 8, 10, 12]
    # The last day of every month is -1.
    last = _series("FREQ=MONTHLY;BYMONTHDAY=-1", "UTC", start, 3)
    assert [(d.month, d.day) for d in last] == [(2, 28), (3, 31), (4, 30)]


def test_count_and_until_end_the_series() -> None:
    start = datetime(2026, 5, 4, 9, 0, tzinfo=UTC)  # a Monday
    # COUNT counts the first occurrence: 3 in all, so 2 after the start.
    assert len(_series("FREQ=WEEKLY;COUNT=3", "UTC", start, 10)) == 2
    until = _series("FREQ=DAILY;UNTIL=20260507T090000Z", "UTC", start, 10)
    assert [d.day for d in until] == [5, 6, 7]


def test_completing_late_skips_the_occurrences_already_past() -> None:
    start = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)
    now = datetime(2026, 1, 20, 12, 0, tzinfo=UTC)
    (nxt,) = _series("FREQ=DAILY", "UTC", start, 1, now=now)
    assert nxt == datetime(2026, 1, 21, 9, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("rule", "reason"),
    [
        ("FREQ=HOURLY", "FREQ=HOURLY is not supported"),
        ("FREQ=DAILY;BYSECOND=5", "BYSECOND"),
        ("FREQ=DAILY;COUNT=2;UNTIL=20300101T000000Z", "COUNT and UNTIL"),
        ("FREQ=DAILY;INTERVAL=0", "INTERVAL=0 is out of range"),
        ("FREQ=YEARLY;BYMONTH=2;BYMONTHDAY=30", "matches no date"),
        ("FREQ=MONTHLY;BYDAY=MO;BYSETPOS=9", "matches no date"),
        ("DTSTART:20260101T000000\nRRULE:FREQ=DAILY", "one RRULE line"),
        ("FREQ=DAILY;UNTIL=20200101T000000Z", "no occurrence from due_at on"),
    ],
)
def test_a_rule_that_cannot_be_used_says_why(rule: str, reason: str) -> None:
    with pytest.raises(recurrence.RuleError, match=reason):
        parsed = recurrence.parse_rule(rule)
        tz = recurrence.zone("UTC")
        recurrence.check_start(parsed, tz, datetime(2026, 1, 1, 9, 0))


# --- through the API ----------------------------------------------------------------------------


def _body(task: dict[str, object], **changes: object) -> dict[str, object]:
    keep = ("title", "description", "status", "priority", "due_at", "tags", "reminders")
    return {**{k: task[k] for k in keep}, "recurrence": task["recurrence"], **changes}


def _open_instances(client: TestClient, auth: dict[str, str], series: str) -> list[dict]:
    page = client.get(
        "/api/v1/tasks",
        params={"series_id": series, "status": ["todo", "in_progress"]},
        headers=auth,
    )
    assert page.status_code == 200, page.text
    return list(page.json()["items"])


def _create_series(
    client: TestClient,
    auth: dict[str, str],
    title: str,
    due_at: str,
    rrule: str,
    timezone: str = "UTC",
    **fields: object,
) -> dict[str, Any]:
    """POST a recurring task (the series' first instance) and return it as created."""
    created = client.post(
        "/api/v1/tasks",
        json={
            "title": title,
            "due_at": due_at,
            "recurrence": {"rrule": rrule, "timezone": timezone},
            **fields,
        },
        headers=auth,
    )
    assert created.status_code == 201, created.text
    return dict(created.json())


def test_closing_an_occurrence_creates_the_next_once_with_series_and_reminders(
    client: TestClient, auth: dict[str, str], events_api_env: EventsApiEnv
) -> None:
    created = _create_series(
        client,
        auth,
        "Standup notes",
        "2030-06-03T09:30:00+02:00",  # a Monday, Berlin summer time
        "freq=weekly;byday=mo,we",
        "Europe/Berlin",
        reminders=["PT10M"],
        tags=["team"],
    )
    assert created["recurrence"] == {
        "rrule": "FREQ=WEEKLY;BYDAY=MO,WE",
        "timezone": "Europe/Berlin",
    }
    series = created["series_id"]
    done = client.put(
        f"/api/v1/tasks/{created['id']}", json=_body(created, status="done"), headers=auth
    )
    assert done.status_code == 200
    # Done again (a retry, or a second click): still one next instance.
    client.put(f"/api/v1/tasks/{created['id']}", json=_body(created, status="done"), headers=auth)
    (nxt,) = _open_instances(client, auth, series)
    assert nxt["due_at"].startswith("2030-06-05T07:30:00")  # Wednesday 09:30 CEST
    assert nxt["occurrence_at"] == nxt["due_at"]
    assert (nxt["series_id"], nxt["reminders"], nxt["tags"]) == (series, ["PT10M"], ["team"])
    assert nxt["status"] == "todo" and nxt["id"] != created["id"]
    # Cancelling skips an occurrence: the series goes on.
    client.put(f"/api/v1/tasks/{nxt['id']}", json=_body(nxt, status="cancelled"), headers=auth)
    (third,) = _open_instances(client, auth, series)
    assert third["due_at"].startswith("2030-06-10T07:30:00")  # the next Monday
    records = read_topic(events_api_env.bootstrap, events_api_env.topics.tasks, 7)
    created_ids = [
        decode(r.value).subject for r in records if decode(r.value).type == "task.created"
    ]
    assert created_ids == [created["id"], nxt["id"], third["id"]]


def test_editing_the_rule_restarts_the_series_and_null_stops_it(
    client: TestClient, auth: dict[str, str]
) -> None:
    created = _create_series(
        client, auth, "Pay rent", "2030-01-31T08:00:00Z", "FREQ=MONTHLY;BYMONTHDAY=31"
    )
    series = created["series_id"]
    # Edit: from this instance on, the 1st of each month.
    edited = client.put(
        f"/api/v1/tasks/{created['id']}",
        json=_body(created, recurrence={"rrule": "FREQ=MONTHLY;BYMONTHDAY=1", "timezone": "UTC"}),
        headers=auth,
    ).json()
    assert edited["series_id"] == series
    client.put(f"/api/v1/tasks/{edited['id']}", json=_body(edited, status="done"), headers=auth)
    (nxt,) = _open_instances(client, auth, series)
    assert nxt["due_at"].startswith("2030-02-01T08:00:00")
    # Stop: no rule on the open instance, so closing it creates nothing.
    stopped = client.put(
        f"/api/v1/tasks/{nxt['id']}", json=_body(nxt, recurrence=None), headers=auth
    ).json()
    assert stopped["recurrence"] is None and stopped["series_id"] == series
    client.put(f"/api/v1/tasks/{nxt['id']}", json=_body(stopped, status="done"), headers=auth)
    assert _open_instances(client, auth, series) == []


def test_count_ends_the_series_through_the_api(client: TestClient, auth: dict[str, str]) -> None:
    task = _create_series(client, auth, "Three times", "2030-01-01T08:00:00Z", "FREQ=DAILY;COUNT=3")
    series, seen = task["series_id"], [task["due_at"]]
    for _ in range(5):
        client.put(f"/api/v1/tasks/{task['id']}", json=_body(task, status="done"), headers=auth)
        opened = _open_instances(client, auth, series)
        if not opened:
            break
        task = opened[0]
        seen.append(task["due_at"])
    assert [s[:10] for s in seen] == ["2030-01-01", "2030-01-02", "2030-01-03"]


def test_deleting_the_open_instance_ends_the_series(
    client: TestClient, auth: dict[str, str]
) -> None:
    task = _create_series(client, auth, "t", "2030-01-01T08:00:00Z", "FREQ=DAILY")
    assert client.delete(f"/api/v1/tasks/{task['id']}", headers=auth).status_code == 204
    assert _open_instances(client, auth, task["series_id"]) == []
