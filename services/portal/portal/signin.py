"""Sign-in, its callback and sign-out (open to everyone: they are how one gets a session).

``GET /login?next=/path`` starts the code flow (``oidc.py``) and keeps its state in the sign-in
cookie; ``GET /callback`` finishes it, sets the session cookie and goes to ``next`` (a path of
ours only). ``POST /logout`` (with the CSRF token) ends the session, and at the identity provider
too when it names an end-session endpoint.
"""

from __future__ import annotations

import time

import httpx
from fastapi import APIRouter, Query, Request
from fastapi.responses import RedirectResponse, Response

from quartier_shared.logging import get_logger

from .oidc import Pending, SignInFailed
from .session import LOGIN_COOKIE, LOGIN_SECONDS, SESSION_COOKIE
from .web import Portal

log = get_logger(__name__)


def _own_path(value: str | None) -> str:
    """Only a path on this site (no ``//host`` or scheme): no open redirect."""
    if not value or not value.startswith("/") or value.startswith("//") or "\\" in value or len(value) > 512:
        return "/"
    return value


def build_signin_router(portal: Portal) -> APIRouter:
    router = APIRouter(tags=["sign-in"])

    @router.get("/login")
    async def login(request: Request, next: str | None = Query(default=None, max_length=512)) -> Response:
        try:
            pending, url = await portal.oidc.start(_own_path(next))
        except (httpx.HTTPError, SignInFailed, KeyError) as exc:
            log.warning("identity_provider_unreachable", error=type(exc).__name__)
            _ = portal.pages.gettext(portal.language(request))
            text = _("The sign-in service is not reachable right now. Please try again shortly.")
            return portal.message(request, "Service unavailable", text, "danger", 503)
        response = RedirectResponse(url, status_code=303)
        portal.set_cookie(response, LOGIN_COOKIE, portal.logins.dumps(pending.__dict__), LOGIN_SECONDS)
        return response

    @router.get("/callback")
    async def callback(
        request: Request,
        code: str = Query(default="", max_length=2048),
        state: str = Query(default="", max_length=512),
    ) -> Response:
        found = portal.logins.loads(request.cookies.get(LOGIN_COOKIE))
        _ = portal.pages.gettext(portal.language(request))
        try:
            if found is None or not code:
                raise SignInFailed("no sign-in under way, or no code")
            pending = Pending(**found)
            session = await portal.oidc.finish(pending, code, state, portal.settings.session_minutes)
        except (SignInFailed, TypeError, httpx.HTTPError) as exc:
            log.info("sign_in_failed", reason=str(exc)[:200])
            text = _("The sign-in could not be completed. Please sign in again.")
            return portal.message(request, "Sign-in failed", text, "warning", 400)
        log.info("signed_in", initiated_by=session.subject, roles=session.roles)
        response = RedirectResponse(_own_path(pending.next), status_code=303)
        max_age = max(int(session.expires - time.time()), 0)
        portal.set_cookie(response, SESSION_COOKIE, portal.sessions.dumps(session.to_dict()), max_age)
        response.delete_cookie(LOGIN_COOKIE, path="/")
        return response

    @router.post("/logout")
    async def logout(request: Request) -> Response:
        session = portal.session_of(request)
        if session is not None:
            await portal.checked_form(request, session)
        target = await portal.oidc.end_session_url(f"{portal.settings.public_url}/") or "/"
        response = RedirectResponse(target, status_code=303)
        response.delete_cookie(SESSION_COOKIE, path="/")
        return response

    return router
