"""The operators' page (role ``operator``): per service, its dead letters (where from, the error
class and the redacted reason, when) with a replay button, its outbox backlog and its consumers'
lag. Everything comes from each service's ``/operations`` endpoints (``quartier_shared.operations``),
which never answer with a record's value; the portal shows what they say and nothing more.

A service that does not answer gets a banner in its own section; the others are still shown.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import RedirectResponse, Response

from quartier_shared.dead_letters import DEAD_LETTER_TOPIC, DEAD_LETTER_TOPICS

from .api_client import ApiError, ServiceDown
from .session import Session
from .web import N_, SERVICE_NAMES, Portal

SERVICES = ("actors", "conferences", "notifications")


@dataclass
class ServiceView:
    name: str
    title: str
    down: bool = False
    dead_letters: list[dict[str, Any]] = field(default_factory=list)
    outbox: dict[str, Any] = field(default_factory=dict)
    consumers: list[dict[str, Any]] = field(default_factory=list)


async def service_view(portal: Portal, session: Session, name: str, topic: str) -> ServiceView:
    view = ServiceView(name, SERVICE_NAMES[name])
    api = portal.api(name, session)
    try:
        letters, outbox, consumers = await asyncio.gather(
            api.get("/operations/dead-letters", topic=topic),
            api.get("/operations/outbox"),
            api.get("/operations/consumers"),
        )
    except (ServiceDown, ApiError):
        view.down = True
        return view
    view.dead_letters, view.outbox, view.consumers = letters.data, outbox.data, consumers.data
    return view


def build_operations_router(portal: Portal) -> APIRouter:
    router = APIRouter(tags=["pages"])

    def operator(request: Request) -> Session:
        return portal.signed_in_as(request, lambda s: "operator" in s.roles, N_("This page is for operators."))

    @router.get("/operations")
    async def operations(request: Request, topic: str = Query(default=DEAD_LETTER_TOPIC, max_length=100)) -> Response:
        session = operator(request)
        topic = topic if topic in DEAD_LETTER_TOPICS else DEAD_LETTER_TOPIC
        views = await asyncio.gather(*(service_view(portal, session, name, topic) for name in SERVICES))
        done = request.query_params.get("done", "")
        context = {
            "views": views,
            "topic": topic,
            "topics": DEAD_LETTER_TOPICS,
            "csrf": session.csrf,
            "replayed": done if done.replace("-", "").replace("/", "").isalnum() else "",
            "failed": request.query_params.get("failed", "") in SERVICES,
        }
        return portal.render(request, "operations.html", context)

    @router.post("/operations/{service}/dead-letters/{partition}/{offset}/replay")
    async def replay(request: Request, service: str, partition: int, offset: int) -> Response:
        session = operator(request)
        form = await portal.checked_form(request, session)
        topic = form.get("topic")
        topic = topic if isinstance(topic, str) and topic in DEAD_LETTER_TOPICS else DEAD_LETTER_TOPIC
        if service not in SERVICES:
            return RedirectResponse("/operations", status_code=303)
        params = {"topic": topic, "partition": partition}
        try:
            await portal.api(service, session).call("POST", f"/operations/dead-letters/{offset}/replay", params=params)
        except (ApiError, ServiceDown):  # gone, its topic not read there, or Kafka away: said on the page
            return RedirectResponse(f"/operations?topic={topic}&failed={service}", status_code=303)
        return RedirectResponse(f"/operations?topic={topic}&done={service}/{partition}-{offset}", status_code=303)

    return router
