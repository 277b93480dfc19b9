"""Which channels an envelope goes to, from the `NOTIFIER_ROUTES` configuration.

`NOTIFIER_ROUTES` is a JSON list of routes; a route matches when the envelope's type matches one
of `types` (shell-style patterns, e.g. `task.*`) and its category (`data.category`, present on
`event.received`) is one of `categories`. An empty or missing list matches everything. The
channels of every matching route are delivered to, each once, in configuration order.

    [{"types": ["event.received"], "categories": ["alert"], "channels": ["slack", "telegram"]},
     {"types": ["task.*"], "channels": ["webhook"]}]
"""

from __future__ import annotations

from fnmatch import fnmatchcase

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter

from apps.common.envelope import EventEnvelope


class Route(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    types: tuple[str, ...] = ()
    categories: tuple[str, ...] = ()
    channels: tuple[str, ...] = Field(min_length=1)

    def matches(self, envelope: EventEnvelope) -> bool:
        if self.types and not any(fnmatchcase(envelope.type, p) for p in self.types):
            return False
        if self.categories:
            return envelope.data.get("category") in self.categories
        return True


ROUTES_ADAPTER: TypeAdapter[tuple[Route, ...]] = TypeAdapter(tuple[Route, ...])


def parse_routes(raw: str) -> tuple[Route, ...]:
    return ROUTES_ADAPTER.validate_json(raw)


def channels_for(envelope: EventEnvelope, routes: tuple[Route, ...]) -> list[str]:
    selected: list[str] = []
    for route in routes:
        if route.matches(envelope):
            selected.extend(c for c in route.channels if c not in selected)
    return selected
