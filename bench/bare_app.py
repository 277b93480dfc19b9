"""The comparison point for events-api: a bare FastAPI endpoint with the same request model shape
and the same 202 answer, but no auth, no database and no outbox. Served by the same uvicorn."""

from __future__ import annotations

import uuid

from fastapi import FastAPI, status
from pydantic import BaseModel, ConfigDict


class EventIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    category: str
    message: str
    description: str | None = None
    fields: dict[str, str] = {}


class Accepted(BaseModel):
    id: uuid.UUID
    correlation_id: str


app = FastAPI()


@app.post("/api/v1/events", status_code=status.HTTP_202_ACCEPTED, response_model=Accepted)
def accept(event: EventIn) -> Accepted:
    return Accepted(id=uuid.uuid4(), correlation_id=uuid.uuid4().hex)


@app.get("/healthz")
def healthz() -> dict[str, str]:
    return {"status": "ok"}
