"""Conferences in the browser: the list, scheduling (always as a draft first: the mail's preview
and a test mail, then publish), and the conference page with every invitation's delivery status
and answer, the totals, and the coordinator's buttons: change (``PATCH``), cancel (``DELETE``),
nudge those who have not answered (``POST .../reminders``), resend one invitation.

Who may use it: coordinators (everything) and quarter managers (reading their districts'
conferences; the services decide, as for every call). The preview and the test mail come from
the notifications service; everything else from the conferences service; the invitees' names
from the actors service (an invitation carries only the actor's id).

Live statuses: the conference page polls ``/conferences/{id}/live``, an HTML fragment of the
totals and the invitations, with ``static/live.js`` (the only script, served from the portal
itself; the page's CSP allows scripts from 'self' and nothing inline). Without JavaScript the
page is the same and a reload shows the news.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from quartier_shared.pagination import MAX_LIMIT
from quartier_shared.web import CONTENT_SECURITY_POLICY

from .api_client import ApiError, ServiceDown
from .conference_form import api_body, form_errors, form_values, stored_values, text
from .session import Session
from .start import visible_districts
from .web import N_, Portal

# The conference page runs one script of ours; everything else stays as strict as on every page.
LIVE_PAGE_POLICY = CONTENT_SECURITY_POLICY.replace("script-src 'none'", "script-src 'self'")
DONE = ("created", "published", "changed", "cancelled", "nudged", "resent", "test_mail")


def safe_id(value: str) -> str:
    """An id goes into the API's path: only the characters ids have (else one that is not found)."""
    return value if value.replace("-", "").isalnum() and len(value) <= 64 else "unknown"


def with_times(conference: dict[str, Any]) -> dict[str, Any]:
    for name in ("starts_at", "ends_at"):
        if isinstance(conference.get(name), str):
            conference[name] = datetime.fromisoformat(conference[name])
    return conference


def build_conferences_router(portal: Portal) -> APIRouter:
    router = APIRouter(tags=["pages"])

    def reader(request: Request) -> Session:
        return portal.signed_in_as(request, lambda s: s.keeps_registry, N_("Your role has no access to conferences."))

    def coordinator(request: Request) -> Session:
        refusal = N_("Only coordinators schedule and change conferences.")
        return portal.signed_in_as(request, lambda s: s.is_coordinator, refusal)

    def refused(request: Request, error: ApiError) -> Response:
        _ = portal.pages.gettext(portal.language(request))
        if error.status == 404:
            return portal.message(request, "Not found", _("This conference does not exist."), "warning", 404)
        if error.status == 403:
            return portal.message(request, "Not allowed", _("You may not do this for this conference."), "warning", 403)
        return portal.message(request, "Not possible", _("The request was refused."), "warning", error.status)

    async def live_context(session: Session, conference_id: str) -> dict[str, Any]:
        """The conference with its invitations, each with the invitee's name and kind."""
        conference = with_times((await portal.api("conferences", session).get(f"/conferences/{conference_id}")).data)
        try:
            actors = await portal.api("actors", session).get(
                "/actors", district=conference["district"], include_inactive="true", limit=MAX_LIMIT
            )
            known = {a["id"]: a for a in actors.data}
        except ApiError:  # names are a help, not a need: the page shows ids then
            known = {}
        for invitation in conference["invitations"]:
            actor = known.get(invitation["actor_id"], {})
            invitation["name"] = actor.get("name", invitation["actor_id"])
            invitation["kind"] = actor.get("kind", "")
        conference["invitations"].sort(key=lambda i: i["name"].casefold())
        pending = conference["counts"].get("pending", 0)
        return {"conference": conference, "csrf": session.csrf, "pending": pending}

    async def detail(
        request: Request,
        session: Session,
        conference_id: str,
        *,
        notice: str = "",
        errors: dict[str, str] | None = None,
        status_code: int = 200,
    ) -> Response:
        try:
            context = await live_context(session, conference_id)
        except ApiError as error:
            return refused(request, error)
        conference = context["conference"]
        preview, preview_down = None, False
        if session.is_coordinator and conference["status"] == "draft":
            language = portal.language(request)
            try:
                preview = (
                    await portal.api("notifications", session).get(
                        f"/conferences/{conference_id}/preview", language=language
                    )
                ).data
            except ApiError:  # 404 for a moment after scheduling: its event is on its way
                preview = None
            except ServiceDown:  # the banner stands in the preview's place; publishing still works
                preview_down = True
        done = request.query_params.get("done", "")
        context |= {
            "preview": preview,
            "preview_down": preview_down,
            "done": done if done in DONE else "",
            "notice": notice,
            "errors": errors or {},
            "reason": request.query_params.get("reason", ""),
        }
        response = portal.render(request, "conference.html", context, status_code=status_code)
        response.headers["Content-Security-Policy"] = LIVE_PAGE_POLICY
        return response

    def done(conference_id: str, what: str) -> Response:
        return RedirectResponse(f"/conferences/{conference_id}?done={what}", status_code=303)

    @router.get("/conferences")
    async def list_conferences(
        request: Request,
        district: str = Query(default="", max_length=16),
        cursor: str = Query(default="", max_length=512),
    ) -> Response:
        session = reader(request)
        try:
            found = await portal.api("conferences", session).get(
                "/conferences", district=district, cursor=cursor, limit=50
            )
        except ApiError as error:
            return refused(request, error)
        context = {
            "conferences": [with_times(c) for c in found.data],
            "next_cursor": found.next_cursor,
            "district": district,
            "districts": visible_districts(portal, session),
        }
        return portal.render(request, "conferences.html", context)

    def form_page(
        request: Request,
        session: Session,
        values: dict[str, str],
        errors: dict[str, str] | None = None,
        *,
        stored: dict[str, Any] | None = None,
        status_code: int = 200,
    ) -> HTMLResponse:
        context = {
            "values": values,
            "errors": errors or {},
            "stored": stored,
            "districts": visible_districts(portal, session),
            "csrf": session.csrf,
        }
        return portal.render(request, "conference_form.html", context, status_code=status_code)

    @router.get("/conferences/new")
    async def new(request: Request) -> Response:
        session = coordinator(request)
        values = {"audience": "district", "starts": "17:00", "ends": "20:00"}
        return form_page(request, session, values)

    @router.post("/conferences/new")
    async def schedule(request: Request) -> Response:
        session = coordinator(request)
        values = form_values(await portal.checked_form(request, session))
        body, errors = api_body(values, portal.catalogue.timezone)
        if not errors:
            body |= {"district": values["district"], "audience": values["audience"] or "district", "draft": True}
            try:
                created = await portal.api("conferences", session).call("POST", "/conferences", json=body)
            except ApiError as error:
                if error.status != 422:
                    return refused(request, error)
                errors = error.field_errors(portal.pages.gettext(portal.language(request)))
            else:
                return done(created.data["id"], "created")
        return form_page(request, session, values, form_errors(errors), status_code=422)

    @router.get("/conferences/{conference_id}")
    async def show(request: Request, conference_id: str) -> Response:
        session = reader(request)
        return await detail(request, session, safe_id(conference_id))

    @router.get("/conferences/{conference_id}/live")
    async def live(request: Request, conference_id: str) -> Response:
        """The fragment the page's script polls: the totals and the invitations."""
        session = reader(request)
        try:
            context = await live_context(session, safe_id(conference_id))
        except ApiError as error:
            return Response(status_code=error.status)
        return portal.render(request, "conference_live.html", context)

    @router.get("/conferences/{conference_id}/edit")
    async def edit(request: Request, conference_id: str) -> Response:
        session = coordinator(request)
        try:
            stored = (await portal.api("conferences", session).get(f"/conferences/{safe_id(conference_id)}")).data
        except ApiError as error:
            return refused(request, error)
        return form_page(request, session, stored_values(stored), stored=with_times(stored))

    @router.post("/conferences/{conference_id}/edit")
    async def change(request: Request, conference_id: str) -> Response:
        """Sends only what differs from the stored conference: the invitees are told of that."""
        session = coordinator(request)
        conference_id = safe_id(conference_id)
        values = form_values(await portal.checked_form(request, session))
        api = portal.api("conferences", session)
        try:
            stored = (await api.get(f"/conferences/{conference_id}")).data
        except ApiError as error:
            return refused(request, error)
        body, errors = api_body(values, portal.catalogue.timezone)
        before, _ = api_body(stored_values(stored), portal.catalogue.timezone)
        if not errors:
            changed = {name: value for name, value in body.items() if before.get(name) != value}
            try:
                await api.call("PATCH", f"/conferences/{conference_id}", json=changed)
            except ApiError as error:
                if error.status != 422:
                    return refused(request, error)
                errors = error.field_errors(portal.pages.gettext(portal.language(request)))
            else:
                return done(conference_id, "changed")
        values |= {"district": stored["district"], "audience": stored["audience"]}
        return form_page(request, session, values, form_errors(errors), stored=with_times(stored), status_code=422)

    async def act(request: Request, conference_id: str, method: str, path: str, what: str, **call: Any) -> Response:
        """One of the page's buttons: the call, then the page again with what happened."""
        session = coordinator(request)
        form = await portal.checked_form(request, session)
        conference_id = safe_id(conference_id)
        if what == "cancelled":
            call["params"] = {"reason": text(form, "reason")}
        if what == "test_mail":
            call["json"] = {"email": text(form, "email"), "language": text(form, "language") or "de"}
        service = "notifications" if what == "test_mail" else "conferences"
        try:
            await portal.api(service, session).call(method, path.format(id=conference_id), **call)
        except ApiError as error:
            if error.status in (404, 403):
                return refused(request, error)
            _ = portal.pages.gettext(portal.language(request))
            notices = {
                409: _("Not possible now: the conference is a draft, cancelled or has begun."),
                429: _("Already sent within the last hour; please try again later."),
            }
            notice = notices.get(error.status, _("The request was refused."))
            errors = error.field_errors(portal.pages.gettext(portal.language(request))) if error.status == 422 else {}
            notice = "" if errors else notice
            return await detail(request, session, conference_id, notice=notice, errors=errors, status_code=error.status)
        return done(conference_id, what)

    @router.post("/conferences/{conference_id}/publish")
    async def publish(request: Request, conference_id: str) -> Response:
        return await act(request, conference_id, "POST", "/conferences/{id}/publish", "published")

    @router.post("/conferences/{conference_id}/test-mail")
    async def test_mail(request: Request, conference_id: str) -> Response:
        return await act(request, conference_id, "POST", "/conferences/{id}/test-mail", "test_mail")

    @router.post("/conferences/{conference_id}/nudge")
    async def nudge(request: Request, conference_id: str) -> Response:
        return await act(request, conference_id, "POST", "/conferences/{id}/reminders", "nudged")

    @router.post("/conferences/{conference_id}/cancel")
    async def cancel(request: Request, conference_id: str) -> Response:
        return await act(request, conference_id, "DELETE", "/conferences/{id}", "cancelled")

    @router.post("/conferences/{conference_id}/invitations/{invitation_id}/resend")
    async def resend(request: Request, conference_id: str, invitation_id: str) -> Response:
        path = f"/conferences/{{id}}/invitations/{safe_id(invitation_id)}/resend"
        return await act(request, conference_id, "POST", path, "resent")

    return router
