"""The actor registry in the browser: the list (filter by district and kind, search by name or
address: the API's ``district``, ``kind`` and ``q``; paging by the API's cursor), register, edit
(with the consent record and its history), deactivate, and the CSV export of the current filter.

Who may use it: signed-in coordinators and quarter managers (others get the page saying so); the
actors service decides every call (403 and 404 become a message page, 422 errors stand next to
their fields). Buttons to edit and deactivate appear only on actors the user may change
(``Session.may_change``, the service's rule). Every form post carries the CSRF token.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import RedirectResponse, Response
from starlette.datastructures import FormData

from quartier_shared.catalogue import District

from .api_client import ApiError
from .session import Session
from .start import visible_districts
from .web import N_, Portal

PAGE_SIZE = 25
MAX_FIELD = 320


def with_times(actor: dict[str, Any]) -> dict[str, Any]:
    """The actor's consent times as datetimes (the templates format them in the city's zone)."""
    for record in [actor.get("consent"), *actor.get("consent_history", [])]:
        if record and isinstance(record.get("at"), str):
            record["at"] = datetime.fromisoformat(record["at"])
    return actor


def form_values(form: FormData) -> dict[str, Any]:
    """The actor form as the API's body (``consent`` as a record)."""

    def text(name: str) -> str:
        value = form.get(name)
        return value.strip()[:MAX_FIELD] if isinstance(value, str) else ""

    given = form.get("consent") == "yes"
    basis = text("consent_basis") or "consent"
    return {
        "name": text("name"),
        "kind": text("kind"),
        "districts": [d for d in form.getlist("districts") if isinstance(d, str)][:50],
        "email": text("email"),
        "language": text("language") or "de",
        "consent": {"given": given, "basis": basis},
    }


def build_actors_router(portal: Portal) -> APIRouter:
    router = APIRouter(tags=["pages"])

    def registry_session(request: Request) -> Session:
        refusal = N_("Your role has no access to the actor registry.")
        return portal.signed_in_as(request, lambda s: s.keeps_registry, refusal)

    def districts_for(session: Session) -> list[District]:
        return visible_districts(portal, session)

    def form_context(
        session: Session,
        values: dict[str, Any],
        errors: dict[str, str] | None = None,
        stored: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        # an actor's own districts stay on the form even when they are not the user's
        shown = {d.code for d in districts_for(session)} | set(values.get("districts") or [])
        return {
            "values": values,
            "errors": errors or {},
            "stored": stored,
            "district_choices": [d for d in portal.catalogue.districts if d.code in shown],
            "csrf": session.csrf,
        }

    def refused(request: Request, error: ApiError) -> Response:
        _ = portal.pages.gettext(portal.language(request))
        if error.status == 404:
            return portal.message(request, "Not found", _("This actor does not exist."), "warning", 404)
        if error.status == 403:
            return portal.message(request, "Not allowed", _("You may not do this for this actor."), "warning", 403)
        if error.status == 409:
            return portal.message(
                request, "Not possible", _("This actor was erased and cannot be changed."), "warning", 409
            )
        return portal.message(request, "Not possible", _("The request was refused."), "warning", error.status)

    @router.get("/actors")
    async def list_actors(
        request: Request,
        district: str = Query(default="", max_length=16),
        kind: str = Query(default="", max_length=64),
        q: str = Query(default="", max_length=100),
        include_inactive: bool = False,
        cursor: str = Query(default="", max_length=512),
    ) -> Response:
        """Signed-in coordinators and quarter managers: one page of the actors they may see."""
        session = registry_session(request)
        filters = {"district": district, "kind": kind, "include_inactive": "true" if include_inactive else ""}
        errors: dict[str, str] = {}
        try:
            found = await portal.api("actors", session).get(
                "/actors", limit=PAGE_SIZE, cursor=cursor, q=q.strip(), **filters
            )
        except ApiError as error:
            if error.status != 422:
                return refused(request, error)
            found, errors = None, error.field_errors(portal.pages.gettext(portal.language(request)))
        actors = [with_times(a) for a in found.data] if found else []
        context = {
            "actors": actors,
            "filters": {**filters, "q": q},
            "next_cursor": found.next_cursor if found else None,
            "errors": errors,
            "districts": districts_for(session),
            "may_change": {a["id"]: session.may_change(a["districts"]) for a in actors},
            "done": request.query_params.get("done", ""),
        }
        return portal.render(request, "actors.html", context)

    @router.get("/actors/export.csv")
    async def export(
        request: Request,
        district: str = Query(default="", max_length=16),
        kind: str = Query(default="", max_length=64),
        q: str = Query(default="", max_length=100),
        include_inactive: bool = False,
    ) -> Response:
        """The actors service's CSV of the current filter, passed through."""
        session = registry_session(request)
        params = {
            "district": district,
            "kind": kind,
            "q": q.strip(),
            "include_inactive": "true" if include_inactive else "",
        }
        try:
            answer = await portal.api("actors", session).call("GET", "/actors/export.csv", params=params, raw=True)
        except ApiError as error:
            return refused(request, error)
        headers = {
            "Content-Disposition": (answer.headers or {}).get("content-disposition", "attachment"),
            "Cache-Control": "no-store",
        }
        return Response(answer.content, media_type="text/csv; charset=utf-8", headers=headers)

    @router.get("/actors/new")
    async def new(request: Request) -> Response:
        session = registry_session(request)
        values = {"districts": session.districts[:1], "language": "de", "consent": {"given": False}}
        return portal.render(request, "actor_form.html", form_context(session, values))

    @router.post("/actors/new")
    async def create(request: Request) -> Response:
        session = registry_session(request)
        values = form_values(await portal.checked_form(request, session))
        try:
            await portal.api("actors", session).call("POST", "/actors", json=values)
        except ApiError as error:
            if error.status != 422:
                return refused(request, error)
            context = form_context(session, values, error.field_errors(portal.pages.gettext(portal.language(request))))
            return portal.render(request, "actor_form.html", context, status_code=422)
        return RedirectResponse("/actors?done=created", status_code=303)

    @router.get("/actors/{actor_id}")
    async def edit(request: Request, actor_id: str) -> Response:
        session = registry_session(request)
        try:
            actor = with_times((await portal.api("actors", session).get(f"/actors/{_safe_id(actor_id)}")).data)
        except ApiError as error:
            return refused(request, error)
        return portal.render(request, "actor_form.html", form_context(session, actor, {}, actor))

    @router.post("/actors/{actor_id}")
    async def update(request: Request, actor_id: str) -> Response:
        session = registry_session(request)
        values = form_values(await portal.checked_form(request, session))
        api = portal.api("actors", session)
        try:
            await api.call("PATCH", f"/actors/{_safe_id(actor_id)}", json=values)
        except ApiError as error:
            if error.status != 422:
                return refused(request, error)
            stored = with_times((await api.get(f"/actors/{_safe_id(actor_id)}")).data)
            context = form_context(
                session, values, error.field_errors(portal.pages.gettext(portal.language(request))), stored
            )
            return portal.render(request, "actor_form.html", context, status_code=422)
        return RedirectResponse("/actors?done=updated", status_code=303)

    @router.post("/actors/{actor_id}/deactivate")
    async def deactivate(request: Request, actor_id: str) -> Response:
        session = registry_session(request)
        await portal.checked_form(request, session)
        try:
            await portal.api("actors", session).call("DELETE", f"/actors/{_safe_id(actor_id)}")
        except ApiError as error:
            return refused(request, error)
        return RedirectResponse("/actors?done=deactivated", status_code=303)

    return router


def _safe_id(actor_id: str) -> str:
    """An id goes into the API's path: only the characters ids have (else one that is not found)."""
    return actor_id if actor_id.replace("-", "").isalnum() and len(actor_id) <= 64 else "unknown"
