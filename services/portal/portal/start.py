"""The start page (``GET /``): who is signed in sees their districts; without a session, the
sign-in button.

Coordinators see all districts of the catalogue, quarter managers theirs; others (operators,
data protection) are told that the portal has nothing for their role yet. Per district: its
active actors counted by kind, its competence team by name, and its next conferences (not
cancelled, not begun; at most ``UPCOMING``) with how many invitees answered. Everything comes from
the APIs with the user's token (``GET /actors``, ``GET /districts/{code}/team``,
``GET /conferences``, ``GET /conferences/{id}``), the districts concurrently.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response

from quartier_shared.catalogue import District
from quartier_shared.pagination import MAX_LIMIT

from .session import Session
from .web import Portal

UPCOMING = 3


@dataclass
class DistrictView:
    district: District
    kinds: list[tuple[str, int]] = field(default_factory=list)
    actors: int = 0
    more_actors: bool = False  # more than one page: the counts are of the first MAX_LIMIT
    team: list[str] = field(default_factory=list)
    conferences: list[dict[str, Any]] = field(default_factory=list)


def visible_districts(portal: Portal, session: Session) -> list[District]:
    if session.is_coordinator:
        return list(portal.catalogue.districts)
    if "quarter_manager" in session.roles:
        return [d for d in portal.catalogue.districts if d.code in session.districts]
    return []


async def district_view(portal: Portal, session: Session, district: District) -> DistrictView:
    actors_api, conferences_api = portal.api("actors", session), portal.api("conferences", session)
    actors, team, conferences = await asyncio.gather(
        actors_api.get("/actors", district=district.code, limit=MAX_LIMIT),
        actors_api.get(f"/districts/{district.code}/team"),
        conferences_api.get("/conferences", district=district.code, limit=MAX_LIMIT),
    )
    view = DistrictView(district, actors=len(actors.data), more_actors=actors.next_cursor is not None)
    view.kinds = sorted(Counter(a["kind"] for a in actors.data).items())
    names = {a["id"]: a["name"] for a in actors.data}
    view.team = [names.get(member, member) for member in team.data["members"]]
    now = datetime.now(UTC)
    upcoming = [
        c for c in conferences.data if c["status"] != "cancelled" and datetime.fromisoformat(c["starts_at"]) > now
    ][:UPCOMING]
    details = await asyncio.gather(*(conferences_api.get(f"/conferences/{c['id']}") for c in upcoming))
    for detail in details:
        counts = detail.data["counts"]
        invited = len(detail.data["invitations"])
        answered = invited - counts.get("no_answer", invited)
        detail.data["invited"], detail.data["answered"] = invited, answered
        detail.data["rate"] = round(100 * answered / invited) if invited else None
        detail.data["starts_at"] = datetime.fromisoformat(detail.data["starts_at"])
        view.conferences.append(detail.data)
    return view


def build_start_router(portal: Portal) -> APIRouter:
    router = APIRouter(tags=["pages"])

    @router.get("/")
    async def start(request: Request) -> Response:
        """Anyone: the sign-in button; signed in: the start page of their role."""
        session = portal.session_of(request)
        if session is None:
            return portal.render(request, "signin.html")
        districts = visible_districts(portal, session)
        views = await asyncio.gather(*(district_view(portal, session, d) for d in districts))
        return portal.render(request, "start.html", {"views": views})

    return router
