"""Recurring tasks: RFC 5545 recurrence rules (python-dateutil) in an IANA time zone (zoneinfo).

A rule is evaluated in wall-clock time of its zone: "every day at 09:00 Europe/Berlin" stays at
09:00 local across daylight-saving changes, so its UTC instant moves by an hour twice a year. A
local time that does not exist (the spring-forward gap) is read with the offset before the gap,
and an ambiguous one (fall-back) as its first occurrence, as RFC 5545 section 3.3.5 says.

When the next instance is made: when an occurrence is closed (done or cancelled), in the same
transaction, never by a clock. Why: a task list should show one open instance per series (a
daily task ignored for a month is one overdue task, not thirty), the creation commits with the
completion (no scheduler to fail or double-fire), and the unique (series, occurrence) index makes
it exactly once however many replicas race. The next instance is the rule's first occurrence
after both the closed occurrence and now: completing late skips the occurrences already past
(they count towards COUNT), so a series never spawns instances that are overdue on arrival.

Rules a user sends are bounded before they are evaluated (`parse_rule`): dateutil searches for an
occurrence until the year 9999, so an unsatisfiable rule ("every 30 February") would spin for
seconds. Only the parts listed in ALLOWED_PARTS are accepted, and a rule with filter parts is
proven satisfiable on a copy shifted to the end of the calendar, where the search is short
(worst case measured here: ~0.45 s, a weekly rule whose BYSETPOS can never match; the route runs
it in the threadpool, never on the event loop).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from zoneinfo import ZoneInfo, available_timezones

from dateutil.rrule import DAILY, MONTHLY, WEEKLY, YEARLY, rrule, rrulestr

MAX_RULE_LENGTH = 500
MAX_COUNT = 1000
MAX_INTERVAL = 1000
ALLOWED_FREQS = ("DAILY", "WEEKLY", "MONTHLY", "YEARLY")
"""Sub-daily rules (HOURLY, MINUTELY, SECONDLY) are refused: a task that recurs within a day is
a checklist, and they are what makes rule evaluation expensive."""
ALLOWED_PARTS = (
    "FREQ",
    "INTERVAL",
    "COUNT",
    "UNTIL",
    "BYDAY",
    "BYMONTHDAY",
    "BYMONTH",
    "BYSETPOS",
    "BYHOUR",
    "BYMINUTE",
    "WKST",
)
FILTER_PARTS = ("BYDAY", "BYMONTHDAY", "BYMONTH", "BYSETPOS")
"""Parts that can make a rule match nothing; such rules are proven satisfiable first."""

# Whole Gregorian cycles: every 400 years the calendar repeats, weekdays included. Per
# frequency, how many periods of that frequency one cycle holds.
CYCLE_YEARS = 400
_PERIODS_PER_CYCLE = {DAILY: 146_097, WEEKLY: 20_871, MONTHLY: 4_800, YEARLY: 400}
MAX_CYCLES = 2
"""A filtered rule whose INTERVAL needs more cycles to repeat is refused (see `_satisfiable`)."""

_FREQS = {"DAILY": DAILY, "WEEKLY": WEEKLY, "MONTHLY": MONTHLY, "YEARLY": YEARLY}
_UNTIL_UTC = re.compile(r"UNTIL=(\d{8})(?:T(\d{6}))?Z", re.IGNORECASE)


class RuleError(ValueError):
    """The rule or zone is not usable; the message says why (it becomes a 422's `msg`)."""


@lru_cache(maxsize=1)
def _zones() -> frozenset[str]:
    return frozenset(available_timezones())


def zone(name: str) -> ZoneInfo:
    """The IANA zone `name`, or RuleError (only names from the tz database: no file paths)."""
    if name not in _zones():
        raise RuleError(
            f"unknown time zone {name[:64]!r}; allowed: an IANA name like Europe/Berlin"
        )
    return ZoneInfo(name)


@dataclass(frozen=True)
class Rule:
    """A validated rule: its normalised text and the parts that matter for evaluation."""

    text: str
    freq: int
    interval: int
    has_filters: bool


def _parts(text: str) -> dict[str, str]:
    body = text.strip()
    if body.upper().startswith("RRULE:"):
        body = body[len("RRULE:") :]
    if not body or any(c in body for c in "\r\n"):
        raise RuleError("must be one RRULE line like FREQ=WEEKLY;BYDAY=MO (no DTSTART: due_at is)")
    parts: dict[str, str] = {}
    for item in body.split(";"):
        name, sep, value = item.partition("=")
        name = name.strip().upper()
        if not sep or not value.strip():
            raise RuleError(f"part {item[:40]!r} is not NAME=VALUE")
        if name not in ALLOWED_PARTS:
            raise RuleError(
                f"part {name[:20]!r} is not supported; allowed: {', '.join(ALLOWED_PARTS)}"
            )
        if name in parts:
            raise RuleError(f"part {name} appears twice")
        parts[name] = value.strip().upper()
    return parts


def _bounded_int(parts: dict[str, str], name: str, high: int) -> int | None:
    if name not in parts:
        return None
    raw = parts[name]
    if not raw.isdigit() or not 1 <= int(raw) <= high:
        raise RuleError(f"{name}={raw[:20]} is out of range; allowed: 1..{high}")
    return int(raw)


def _check_daily(parts: dict[str, str], interval: int) -> None:
    """Daily rules may only be narrowed by weekday and month, in ways that always match: the
    search over days is the one that would be slow to prove anything else (`_satisfiable`)."""
    for name in ("BYMONTHDAY", "BYSETPOS"):
        if name in parts:
            raise RuleError(f"{name} with FREQ=DAILY is not supported; allowed: FREQ=MONTHLY")
    if "BYDAY" in parts and math.gcd(interval, 7) != 1:
        raise RuleError(
            f"INTERVAL={interval} with BYDAY never reaches some weekdays; allowed: "
            "an INTERVAL that is not a multiple of 7, or FREQ=WEEKLY"
        )
    if "BYMONTH" in parts and interval > 28:
        raise RuleError(f"INTERVAL={interval} with BYMONTH can skip whole months; allowed: 1..28")


def parse_rule(text: str) -> Rule:
    """Check a rule's syntax and bounds (not yet against a start; see `first_occurrence`)."""
    if len(text) > MAX_RULE_LENGTH:
        raise RuleError(f"longer than {MAX_RULE_LENGTH} characters")
    parts = _parts(text)
    freq = parts.get("FREQ")
    if freq not in ALLOWED_FREQS:
        raise RuleError(
            f"FREQ={str(freq)[:20]} is not supported; allowed: {', '.join(ALLOWED_FREQS)}"
        )
    _bounded_int(parts, "COUNT", MAX_COUNT)
    interval = _bounded_int(parts, "INTERVAL", MAX_INTERVAL) or 1
    if "COUNT" in parts and "UNTIL" in parts:
        raise RuleError("COUNT and UNTIL must not both be given (RFC 5545)")
    if freq == "DAILY":
        _check_daily(parts, interval)
    if freq == "WEEKLY" and "BYMONTHDAY" in parts:
        raise RuleError("BYMONTHDAY with FREQ=WEEKLY is not supported; allowed: FREQ=MONTHLY")
    normalised = ";".join(f"{k}={v}" for k, v in parts.items())
    try:
        # Syntax and value ranges only (a naive start: a UTC UNTIL is read as local here).
        parsed = rrulestr(_UNTIL_UTC.sub(r"UNTIL=\1", normalised), dtstart=datetime(2000, 1, 1))
    except (ValueError, TypeError, OverflowError) as exc:
        raise RuleError(str(exc)[:200] or "not a valid RRULE") from None
    if not isinstance(parsed, rrule):  # pragma: no cover - one RRULE line is always an rrule
        raise RuleError("must be a single RRULE")
    # Daily rules passed `_check_daily`: they always match. In a weekly rule BYDAY expands the
    # week (it cannot empty it); only the limits can.
    filters = {"DAILY": (), "WEEKLY": ("BYMONTH", "BYSETPOS")}.get(freq, FILTER_PARTS)
    has_filters = any(p in parts for p in filters)
    return Rule(normalised, _FREQS[freq], interval, has_filters)


def _with_local_until(rule: Rule, tz: ZoneInfo) -> str:
    """The rule text with a UTC `UNTIL=...Z` turned into the zone's wall-clock time: the rule is
    evaluated in naive local time (dateutil refuses a UTC UNTIL with a naive start)."""

    def local(match: re.Match[str]) -> str:
        stamp = datetime.strptime(match[1] + (match[2] or "000000"), "%Y%m%d%H%M%S")
        try:
            converted = stamp.replace(tzinfo=UTC).astimezone(tz).replace(tzinfo=None)
        except OverflowError:
            converted = stamp
        return f"UNTIL={converted:%Y%m%dT%H%M%S}"

    return _UNTIL_UTC.sub(local, rule.text)


def _build(rule: Rule, tz: ZoneInfo, start: datetime) -> rrule:
    built = rrulestr(_with_local_until(rule, tz), dtstart=start)
    assert isinstance(built, rrule)
    return built


def _satisfiable(rule: Rule, start: datetime) -> bool:
    """Whether the rule (without COUNT/UNTIL) matches anything at all, found cheaply.

    dateutil only stops searching at the year 9999. So the search runs on a copy whose start is
    moved by whole 400-year cycles (same dates, same weekdays) AND whole INTERVALs (same phase),
    as close to 9999 as still leaves one full repetition to search: a rule that matches nothing
    there matches nothing ever, and the search costs at most MAX_CYCLES cycles of periods.
    """
    periods = _PERIODS_PER_CYCLE[rule.freq]
    cycles = rule.interval // math.gcd(rule.interval, periods)
    if cycles > MAX_CYCLES:
        raise RuleError(
            f"INTERVAL={rule.interval} with BYDAY/BYMONTHDAY/BYMONTH/BYSETPOS is not supported "
            f"for this FREQ; allowed: an INTERVAL that repeats within {MAX_CYCLES} calendar cycles"
        )
    span = cycles * CYCLE_YEARS
    shift = max(0, (datetime.max.year - span - start.year) // span) * span
    try:
        moved = start.replace(year=start.year + shift)
    except ValueError:  # 29 February moved to a common year cannot happen (400 | shift)
        moved = start
    probe = rrulestr(
        ";".join(p for p in rule.text.split(";") if not p.startswith(("COUNT=", "UNTIL="))),
        dtstart=moved,
    )
    return next(iter(probe), None) is not None


def local_start(due_at: datetime, tz: ZoneInfo) -> datetime:
    """The series' DTSTART: `due_at` as wall-clock time in the zone."""
    return due_at.astimezone(tz).replace(tzinfo=None)


def to_utc(local: datetime, tz: ZoneInfo) -> datetime:
    """A wall-clock time of the zone as a UTC instant (fold=0: gap -> offset before it)."""
    return local.replace(tzinfo=tz, fold=0).astimezone(UTC)


def check_start(rule: Rule, tz: ZoneInfo, start: datetime) -> None:
    """RuleError unless the rule, started at `start` (local), has an occurrence from then on."""
    if rule.has_filters and not _satisfiable(rule, start):
        raise RuleError("the rule matches no date at all (e.g. a 30 February)")
    if _build(rule, tz, start).after(start, inc=True) is None:
        raise RuleError("the rule has no occurrence from due_at on (UNTIL before it?)")


def next_occurrence(
    text: str, zone_name: str, series_start: datetime, after: datetime, now: datetime
) -> datetime | None:
    """The series' first occurrence after both `after` and `now` (UTC instants), in UTC; None
    when COUNT or UNTIL has ended the series. Rules are stored only after `check_start`."""
    tz = zone(zone_name)
    rule = parse_rule(text)
    not_before = max(after, now).astimezone(tz).replace(tzinfo=None)
    found = _build(rule, tz, series_start).after(not_before, inc=False)
    if found is None:
        return None
    occurrence = to_utc(found, tz)
    # A gap time maps to an instant that may equal the previous one's; never repeat an instant.
    if occurrence <= after:
        return next_occurrence(text, zone_name, series_start, after + timedelta(minutes=1), now)
    return occurrence


def check_series(rrule: str, zone_name: str, due_at: datetime) -> None:
    """RuleError unless the series (a validated rule and zone) has an occurrence from `due_at`
    on. Can search for up to a few hundred ms (see `_satisfiable`): call it off the event loop."""
    tz = zone(zone_name)
    try:
        start = local_start(due_at, tz)
    except OverflowError:
        raise RuleError("due_at is outside the zone's representable range") from None
    check_start(parse_rule(rrule), tz, start)
