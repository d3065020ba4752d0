"""The event catalogue: each service's AsyncAPI document, generated from its FastStream broker.

Publishing goes through the outbox relay, so the publishers declared here are for the catalogue
only: they name each event a service produces, on its topic, with the envelope and payload
schema, version and the major versions retired. The consumer group's subscriber documents what
the service consumes.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from fastapi import APIRouter
from fastapi.responses import JSONResponse
from faststream.kafka import KafkaBroker
from faststream.specification import AsyncAPI

from .events import Event, EventMessage


def declare_published(broker: KafkaBroker, events: Sequence[type[Event]]) -> None:
    for event in events:
        broker.publisher(
            event.topic,
            title=f"{event.topic}:{event.__name__}",
            description=(event.__doc__ or event.__name__).strip().splitlines()[0]
            + f" Key: the {event.aggregate_field.replace('_', ' ')}. Version {event.version}."
            + _retired(event),
            schema=EventMessage[event],  # type: ignore[valid-type]
        )


def _retired(event: type[Event]) -> str:
    # A deliberate breaking change is said where consumers look: which majors nobody reads any more.
    if not event.retired_majors:
        return ""
    majors = ", ".join(f"{major}.x" for major in sorted(event.retired_majors))
    return f" Version {majors} is retired: no service reads it any more, consumers skip it."


def document(broker: KafkaBroker, *, title: str, description: str) -> dict[str, Any]:
    spec = AsyncAPI(broker, title=title, version="1.0.0", description=description, schema_version="3.0.0")
    result: dict[str, Any] = json.loads(spec.to_specification().to_json())
    return result


def asyncapi_router(doc: dict[str, Any]) -> APIRouter:
    router = APIRouter(tags=["event catalogue"])

    @router.get("/asyncapi", summary="AsyncAPI document of the events this service publishes and consumes")
    async def asyncapi_json() -> JSONResponse:
        return JSONResponse(doc)

    return router
