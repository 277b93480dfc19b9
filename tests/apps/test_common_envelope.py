"""Envelope: round trip, and every malformed input maps to one stable EnvelopeError reason."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from apps.common.envelope import (
    SUPPORTED_VERSIONS,
    EnvelopeError,
    EventEnvelope,
    canonical_json,
    decode,
    encode,
    new_envelope,
)


def _valid() -> dict[str, object]:
    return {
        "id": str(uuid.uuid4()),
        "type": "task.created",
        "version": 1,
        "source": "events-api",
        "occurred_at": "2026-01-02T03:04:05+00:00",
        "correlation_id": "c-1",
        "subject": "task-1",
        "data": {"title": "x"},
    }


def test_round_trip_preserves_every_field() -> None:
    env = new_envelope(
        "event.received", source="events-api", subject="s", correlation_id="c", data={"a": "b"}
    )
    assert decode(encode(env)) == env


def test_occurred_at_is_normalised_to_utc() -> None:
    plus_two = datetime(2026, 1, 1, 12, tzinfo=timezone(timedelta(hours=2)))
    env = EventEnvelope.model_validate({**_valid(), "occurred_at": plus_two.isoformat()})
    assert env.occurred_at.tzinfo == UTC
    assert env.occurred_at.hour == 10


def test_envelope_is_frozen() -> None:
    env = decode(json.dumps(_valid()).encode())
    with pytest.raises(ValueError):
        env.subject = "other"  # type: ignore[misc]


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (b"{not json", "invalid_json"),
        (b"\xff\xfe", "invalid_json"),
        (None, "invalid_json"),
        (b"[1, 2]", "schema_violation"),
        (json.dumps({**_valid(), "version": 2}).encode(), "unsupported_version"),
        (json.dumps({**_valid(), "version": "1"}).encode(), "schema_violation"),
        (json.dumps({**_valid(), "type": "task.exploded"}).encode(), "schema_violation"),
        (json.dumps({**_valid(), "unexpected": 1}).encode(), "schema_violation"),
        (
            json.dumps({**_valid(), "occurred_at": "2026-01-02T03:04:05"}).encode(),
            "schema_violation",
        ),
        (
            json.dumps({**_valid(), "occurred_at": "0001-01-01T00:00:00+01:00"}).encode(),
            "schema_violation",
        ),
        (json.dumps({k: v for k, v in _valid().items() if k != "id"}).encode(), "schema_violation"),
    ],
)
def test_malformed_input_has_a_stable_reason(raw: bytes | None, reason: str) -> None:
    with pytest.raises(EnvelopeError) as info:
        decode(raw)
    assert info.value.reason == reason
    assert info.value.detail


def test_unsupported_version_detail_names_supported_versions() -> None:
    with pytest.raises(EnvelopeError) as info:
        decode(json.dumps({**_valid(), "version": 99}).encode())
    assert "99" in info.value.detail
    assert str(list(SUPPORTED_VERSIONS)) in info.value.detail


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=20,
)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=300) | json_values.map(lambda v: json.dumps(v).encode()))
def test_decode_raises_only_envelope_error(raw: bytes) -> None:
    try:
        decode(raw)
    except EnvelopeError as exc:
        assert exc.reason in {"invalid_json", "unsupported_version", "schema_violation"}


@settings(max_examples=200, deadline=None)
@given(st.dictionaries(st.sampled_from(list(_valid())), json_values, max_size=8))
def test_decode_of_mutated_envelopes_raises_only_envelope_error(
    overrides: dict[str, object],
) -> None:
    try:
        decode(json.dumps({**_valid(), **overrides}).encode())
    except EnvelopeError as exc:
        assert exc.reason in {"invalid_json", "unsupported_version", "schema_violation"}


# --- canonical_json: the consumers' fast path must agree with decode -----------------------------

# Spellings a producer could send that `decode` reads; only some are already canonical.
VARIANTS: list[dict[str, object]] = [
    {},
    {"occurred_at": "2026-01-02T03:04:05Z"},
    {"occurred_at": "2026-01-02T03:04:05.123456Z"},
    {"occurred_at": "2026-01-02T03:04:05.1234567Z"},
    {"occurred_at": "2026-01-02 03:04:05Z"},
    {"occurred_at": "2026-01-02t03:04:05z"},
    {"occurred_at": "2026-01-02T05:04:05+02:00"},
    {"occurred_at": "2026-01-02T03:04:05-00:00"},
    {"occurred_at": 1767323045},
    {"occurred_at": "2026-13-02T03:04:05Z"},
    {"occurred_at": "0000-01-02T03:04:05Z"},
    {"occurred_at": "2026-01-02T24:00:00Z"},
    {"occurred_at": "\u0662\u0660\u0662\u0666-01-02T03:04:05Z"},
    {"occurred_at": "2026-01-02T03:04:05.999999+00:00"},
    {"id": "6F9619FF-8B86-D011-B42D-00C04FC964FF"},
    {"id": "6f9619ff8b86d011b42d00c04fc964ff"},
    {"id": "{6f9619ff-8b86-d011-b42d-00c04fc964ff}"},
    {"version": True},
    {"version": 1.0},
    {"data": {"n": float("nan")}},
    {"data": {"big": 10**30, "neg": -0.0, "u": "caf\u00e9 \u2603", "nested": [{"a": None}]}},
    {"source": "x" * 200},
    {"source": "x" * 201},
    {"subject": ""},
]


def _raw(overrides: dict[str, object], drop: str | None = None) -> bytes:
    payload = {k: v for k, v in {**_valid(), **overrides}.items() if k != drop}
    return json.dumps(payload).encode()


def _agrees_with_decode(raw: bytes) -> None:
    """canonical_json raises what decode raises, or returns JSON of the same envelope.

    Compared through `encode`: that is what the old path stored, and it maps NaN (which json
    reads and jsonb refuses) to null, so NaN != NaN does not hide a difference."""
    try:
        expected = decode(raw)
    except EnvelopeError as exc:
        with pytest.raises(EnvelopeError) as info:
            canonical_json(raw)
        assert info.value.reason == exc.reason
        return
    assert encode(decode(canonical_json(raw))) == encode(expected)


def test_canonical_json_hands_on_encode_output_unchanged() -> None:
    raw = encode(
        new_envelope("task.created", source="s", subject="t", correlation_id="c", data={"a": 1})
    )
    assert canonical_json(raw) is raw or canonical_json(raw) == raw
    assert canonical_json(bytearray(raw)) == raw


@pytest.mark.parametrize("overrides", VARIANTS, ids=lambda o: ",".join(f"{k}" for k in o))
def test_canonical_json_agrees_with_decode_on_every_spelling(overrides: dict[str, object]) -> None:
    _agrees_with_decode(_raw(overrides))


@pytest.mark.parametrize("field", ["data", "version", "id"])
def test_canonical_json_agrees_with_decode_on_missing_fields(field: str) -> None:
    _agrees_with_decode(_raw({}, drop=field))


def test_canonical_json_normalises_what_is_not_canonical() -> None:
    raw = _raw(
        {"occurred_at": "2026-01-02T05:04:05+02:00", "id": "6F9619FF-8B86-D011-B42D-00C04FC964FF"}
    )
    normalised = json.loads(canonical_json(raw))
    assert normalised["occurred_at"] == "2026-01-02T03:04:05Z"
    assert normalised["id"] == "6f9619ff-8b86-d011-b42d-00c04fc964ff"


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=300) | json_values.map(lambda v: json.dumps(v).encode()))
def test_canonical_json_agrees_with_decode_on_arbitrary_bytes(raw: bytes) -> None:
    _agrees_with_decode(raw)


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(st.sampled_from(list(_valid())), json_values, max_size=8))
def test_canonical_json_agrees_with_decode_on_mutated_envelopes(
    overrides: dict[str, object],
) -> None:
    _agrees_with_decode(_raw(overrides))
