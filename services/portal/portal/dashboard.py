"""The district dashboard (``GET /dashboard``): how well invitations are answered, per district and
per actor kind, over each district's last ``LAST`` published conferences (not drafts, not
cancelled), and the actors who answered neither of their last two invitations. A bar chart of the
rates per district, drawn on the server as SVG (``role="img"`` with its title and description;
the table beside it holds the same figures).

Everything is computed here from the services' APIs with the user's token: ``GET /conferences``
and ``GET /conferences/{id}`` (invitations with their answers) and ``GET /actors`` (each
invitee's name and kind; an invitation carries only the actor's id). Coordinators see every
district, quarter managers theirs. ``summarise`` is the arithmetic, without I/O.
"""

from __future__ import annotations

import asyncio
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response

from quartier_shared.catalogue import District
from quartier_shared.pagination import MAX_LIMIT

from .session import Session
from .start import visible_districts
from .web import Portal

LAST = 5  # conferences per district
SILENT_AFTER = 2  # invitations in a row without an answer


@dataclass
class Rate:
    label: str
    invited: int = 0
    answered: int = 0

    @property
    def percent(self) -> int | None:
        return round(100 * self.answered / self.invited) if self.invited else None


@dataclass
class Summary:
    districts: list[Rate] = field(default_factory=list)
    kinds: list[Rate] = field(default_factory=list)
    silent: list[dict[str, str]] = field(default_factory=list)  # name, kind, district
    conferences: int = 0


def summarise(
    districts: list[District], conferences: dict[str, list[dict[str, Any]]], actors: dict[str, dict[str, Any]]
) -> Summary:
    """``conferences``: per district code, its conferences with their invitations (earliest
    first); ``actors``: by id, with ``name`` and ``kind``."""
    summary = Summary()
    kinds: dict[str, Rate] = {}
    history: dict[str, list[tuple[str, bool]]] = defaultdict(list)  # actor -> (starts_at, answered)
    for district in districts:
        rate = Rate(district.code)
        for conference in conferences.get(district.code, []):
            summary.conferences += 1
            for invitation in conference["invitations"]:
                answered = invitation.get("answer") is not None
                kind = actors.get(invitation["actor_id"], {}).get("kind", "other")
                per_kind = kinds.setdefault(kind, Rate(kind))
                for counted in (rate, per_kind):
                    counted.invited += 1
                    counted.answered += answered
                history[invitation["actor_id"]].append((conference["starts_at"], answered))
        summary.districts.append(rate)
    summary.kinds = sorted(kinds.values(), key=lambda r: r.label)
    for actor_id, seen in history.items():
        latest = [answered for _, answered in sorted(seen)[-SILENT_AFTER:]]
        if len(latest) == SILENT_AFTER and not any(latest):
            actor = actors.get(actor_id, {})
            districts_of = ", ".join(actor.get("districts", []))
            summary.silent.append(
                {"name": actor.get("name", actor_id), "kind": actor.get("kind", ""), "district": districts_of}
            )
    summary.silent.sort(key=lambda a: a["name"].casefold())
    return summary


async def _district_data(
    portal: Portal, session: Session, district: District
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The district's last published conferences with their invitations, and its actors."""
    conferences_api, actors_api = portal.api("conferences", session), portal.api("actors", session)
    listed, actors = await asyncio.gather(
        conferences_api.get("/conferences", district=district.code, limit=MAX_LIMIT),
        actors_api.get("/actors", district=district.code, include_inactive="true", limit=MAX_LIMIT),
    )
    published = [c for c in listed.data if c["status"] == "scheduled"][-LAST:]
    details = await asyncio.gather(*(conferences_api.get(f"/conferences/{c['id']}") for c in published))
    return [d.data for d in details], actors.data


def build_dashboard_router(portal: Portal) -> APIRouter:
    router = APIRouter(tags=["pages"])

    @router.get("/dashboard")
    async def dashboard(request: Request) -> Response:
        session = portal.signed_in(request)
        if not session.keeps_registry:
            _ = portal.pages.gettext(portal.language(request))
            return portal.message(request, "Not allowed", _("Your role has no access to conferences."), "warning", 403)
        districts = visible_districts(portal, session)
        found = await asyncio.gather(*(_district_data(portal, session, d) for d in districts))
        conferences = {d.code: data[0] for d, data in zip(districts, found, strict=True)}
        actors = {a["id"]: a for _, listed in found for a in listed}
        summary = summarise(districts, conferences, actors)
        return portal.render(request, "dashboard.html", {"summary": summary, "last": LAST, "bar_height": 28})

    return router
