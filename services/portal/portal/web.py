"""What every portal page shares: the session from its cookie, the services' APIs as the user,
rendering in the user's language (``?lang=`` kept in a cookie), the CSRF check of form posts, and
the answers to failures: a service that is down gives the banner page (503), a session that ran
out or a token the services refuse sends the browser to sign in again.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from typing import Any

import httpx
from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from starlette.datastructures import FormData

from quartier_shared.catalogue import Catalogue, load_catalogue
from quartier_shared.logging import get_logger
from quartier_shared.web import Pages, same_origin

from .api_client import Api, NotSignedIn, ServiceDown
from .oidc import OidcClient
from .session import SESSION_COOKIE, Session, Signer
from .settings import Settings

log = get_logger(__name__)
LANG_COOKIE = "quartier_lang"
SERVICE_NAMES = {
    "actors": "Akteure / actors",
    "conferences": "Konferenzen / conferences",
    "notifications": "Benachrichtigungen / notifications",
}
# The headings of message pages: passed to ``Portal.message`` as they are and translated there.
MESSAGE_HEADINGS = (
    "Service unavailable",
    "Form not accepted",
    "Not allowed",
    "Not found",
    "Not possible",
    "Sign-in failed",
)


class SignInNeeded(Exception):
    """No valid session: the browser goes to /login (and back to ``next`` afterwards)."""

    def __init__(self, next_path: str = "/") -> None:
        self.next_path = next_path


class BadForm(Exception):
    """A post without the session's CSRF token, or from another site: 403."""


class NotAllowed(Exception):
    """A signed-in user whose role does not reach the page: 403, saying ``text`` (in the page's language)."""

    def __init__(self, text: str) -> None:
        self.text = text


def N_(msgid: str) -> str:  # gettext's name for "translate later", which pybabel extracts
    """Marks a text to translate where it is used (``Portal.signed_in_as``)."""
    return msgid


class Portal:
    def __init__(self, settings: Settings, catalogue: Catalogue | None = None) -> None:
        self.settings = settings
        self.catalogue = catalogue or load_catalogue()
        key = settings.session_secret.get_secret_value().encode() if settings.session_secret else None
        if key is None:
            log.warning("session_secret_missing", hint="SESSION_SECRET not set: sessions end when the portal stops")
            key = secrets.token_bytes(32)
        self.sessions = Signer(key, "session")
        self.logins = Signer(key, "login")
        self.secure = settings.public_url.startswith("https://")
        self.pages = Pages(
            settings,
            city=self.catalogue.city,
            package="portal",
            language_cookie=LANG_COOKIE,
            secure_cookie=self.secure,
            context=self._base_context,
        )
        self.language = self.pages.language
        self.render = self.pages.render
        self.oidc = OidcClient(
            settings.auth_issuer or "",
            settings.oidc_client_id,
            settings.auth_audience,
            f"{settings.public_url}/callback",
            settings.auth_jwks_url,
            settings.api_timeout_seconds,
            settings.oidc_discovery_url,
        )
        timeout = httpx.Timeout(settings.api_timeout_seconds)
        self.clients = {
            "actors": httpx.AsyncClient(base_url=settings.actors_url, timeout=timeout),
            "conferences": httpx.AsyncClient(base_url=settings.conferences_url, timeout=timeout),
            "notifications": httpx.AsyncClient(base_url=settings.notifications_url, timeout=timeout),
        }

    async def close(self) -> None:
        for client in self.clients.values():
            await client.aclose()

    # --- the session ------------------------------------------------------------------------------

    def session_of(self, request: Request) -> Session | None:
        return Session.from_dict(self.sessions.loads(request.cookies.get(SESSION_COOKIE)))

    def signed_in(self, request: Request) -> Session:
        session = self.session_of(request)
        if session is None:
            raise SignInNeeded(request.url.path)
        return session

    def signed_in_as(self, request: Request, may: Callable[[Session], bool], refusal: str) -> Session:
        """The signed-in session (else to the sign-in page) if its roles reach the page; else 403
        with ``refusal`` (an English text marked with ``N_``, said in the page's language)."""
        session = self.signed_in(request)
        if not may(session):
            raise NotAllowed(self.pages.gettext(self.language(request))(refusal))
        return session

    def api(self, name: str, session: Session) -> Api:
        return Api(name, self.clients[name], session.token)

    def set_cookie(self, response: Response, name: str, value: str, max_age: int) -> None:
        response.set_cookie(name, value, max_age=max_age, httponly=True, samesite="lax", secure=self.secure, path="/")

    async def checked_form(self, request: Request, session: Session) -> FormData:
        """The posted form, if it carries the session's CSRF token and comes from our own pages."""
        form = await request.form()
        token = form.get("csrf")
        if not same_origin(request, self.settings.public_url) or not session.csrf_ok(
            token if isinstance(token, str) else None
        ):
            raise BadForm()
        return form

    # --- pages ------------------------------------------------------------------------------------

    def _base_context(self, request: Request, language: str) -> dict[str, Any]:
        return {"session": self.session_of(request), "catalogue": self.catalogue, "kinds": self.kind_names(language)}

    def kind_names(self, language: str) -> dict[str, str]:
        """Actor kinds by their code: the catalogue's German name, or the code made readable."""
        if language == "de":
            return {k.kind: k.de for k in self.catalogue.actor_kinds}
        return {k.kind: k.kind.replace("_", " ").capitalize() for k in self.catalogue.actor_kinds}

    def message(self, request: Request, heading: str, text: str, kind: str, status_code: int) -> HTMLResponse:
        _ = self.pages.gettext(self.language(request))
        return self.render(
            request, "portal_message.html", {"heading": _(heading), "text": text, "kind": kind}, status_code=status_code
        )


def install_error_pages(app: FastAPI, portal: Portal) -> None:
    @app.exception_handler(SignInNeeded)
    async def sign_in(request: Request, exc: SignInNeeded) -> Response:
        return RedirectResponse(f"/login?next={exc.next_path}", status_code=303)

    @app.exception_handler(NotSignedIn)
    async def token_refused(request: Request, exc: NotSignedIn) -> Response:
        response = RedirectResponse(f"/login?next={request.url.path}", status_code=303)
        response.delete_cookie(SESSION_COOKIE, path="/")
        return response

    @app.exception_handler(ServiceDown)
    async def service_down(request: Request, exc: ServiceDown) -> Response:
        _ = portal.pages.gettext(portal.language(request))
        name = SERVICE_NAMES.get(str(exc), str(exc))
        text = _("The service %(name)s is not reachable right now. Nothing was changed; please try again shortly.")
        return portal.message(request, "Service unavailable", text % {"name": name}, "danger", 503)

    @app.exception_handler(NotAllowed)
    async def not_allowed(request: Request, exc: NotAllowed) -> Response:
        return portal.message(request, "Not allowed", exc.text, "warning", 403)

    @app.exception_handler(BadForm)
    async def bad_form(request: Request, exc: BadForm) -> Response:
        _ = portal.pages.gettext(portal.language(request))
        text = _("The form had expired or did not come from this portal. Please open the page again and resend it.")
        return portal.message(request, "Form not accepted", text, "warning", 403)
