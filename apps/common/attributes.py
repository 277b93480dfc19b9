"""Build a dataclass from another object's same-named attributes (a Kafka record, a settings
object), so the dataclass's field list is the one place that says what is copied."""

from __future__ import annotations

from dataclasses import fields
from typing import Any, TypeVar, cast

T = TypeVar("T")


def from_attributes(cls: type[T], source: object, *, prefix: str = "", **given: Any) -> T:
    """`cls(**given)`, every other field of the dataclass `cls` read from `source`'s attribute
    named `prefix` + the field's name (what pydantic's `from_attributes` does for its models)."""
    # `fields` raises TypeError for a class that is not a dataclass; the cast only spares the
    # signature typeshed's private DataclassInstance protocol (not importable at run time).
    copied = {
        f.name: getattr(source, prefix + f.name)
        for f in fields(cast(Any, cls))
        if f.init and f.name not in given
    }
    return cls(**copied, **given)
