"""The unsubscribe page: ``GET``/``POST /unsubscribe/{token}``, where a person withdraws their
consent to mails, from the link in every mail's footer or its ``List-Unsubscribe`` header.

The contract:
- The link is the credential: ``links.verify(token, purpose=UNSUBSCRIBE)`` with
  ``LINK_VERIFY_KEY``. A token that is not ours (tampered, another key, an answer link, garbage):
  the 404 page. A genuine one that ran out (a year after its mail): the 410 page. Nothing is
  recorded either way.
- ``GET`` asks, in the person's language (``?lang``, else ``Accept-Language``, else German), with
  one button. It changes nothing (mail scanners open links).
- ``POST`` withdraws consent at once: ``UnsubscribeRequested`` (actor id and time) through the
  outbox, for the actors service, which owns consent; then the done page (200). This is the form's
  post and also the RFC 8058 one-click post (``List-Unsubscribe=One-Click``), which comes from a
  mail provider without cookie, bearer token or ``Origin``. So, unlike the answer form, no origin
  check: the token in the URL is the credential, and withdrawing consent twice, or by a post
  made elsewhere with a token one already has, harms no one.
- The actor id is logged, nothing else; the token never. Every page carries
  ``web.SECURITY_HEADERS``.
"""

from __future__ import annotations

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse

from quartier_shared import links
from quartier_shared.http import event_context
from quartier_shared.logging import get_logger
from quartier_shared.web import Pages, choose_language

from . import handlers
from .unit_of_work import UnitOfWorkFactory

log = get_logger(__name__)


def build_unsubscribe_router(uow_factory: UnitOfWorkFactory, pages: Pages, *, verify_key: str | None) -> APIRouter:
    router = APIRouter(include_in_schema=False)
    # Read at start-up: a key setting that names no key stops the service, not the first visitor.
    public_key: Ed25519PublicKey | None = links.load_public_key(verify_key) if verify_key else None

    def message(request: Request, reason: str, status_code: int) -> HTMLResponse:
        _ = pages.gettext(choose_language(request))
        heading, text, kind = {
            "unknown": (
                _("This link is not valid"),
                _("Please check that you opened the whole link from your e-mail."),
                "danger",
            ),
            "gone": (
                _("This link has expired"),
                _("Please use the link in a more recent e-mail from us. Nothing was changed."),
                "warning",
            ),
            "unavailable": (_("This cannot be done right now"), _("Please try again later."), "danger"),
        }[reason]
        return pages.render(
            request, "message.html", {"heading": heading, "text": text, "kind": kind}, status_code=status_code
        )

    def actor_of(request: Request, token: str) -> str | HTMLResponse:
        """The actor the link names, or the page saying why not."""
        if public_key is None:
            log.error("link_verify_key_missing")
            return message(request, "unavailable", 503)
        try:
            return links.verify(token, public_key, purpose=links.UNSUBSCRIBE).actor_id
        except links.InvalidLink:
            return message(request, "unknown", 404)
        except links.ExpiredLink:
            return message(request, "gone", 410)

    @router.get("/unsubscribe/{token}", response_class=HTMLResponse)
    async def ask(token: str, request: Request) -> HTMLResponse:
        actor = actor_of(request, token)
        if isinstance(actor, HTMLResponse):
            return actor
        return pages.render(request, "unsubscribe.html", {"done": False})

    @router.post("/unsubscribe/{token}", response_class=HTMLResponse)
    async def unsubscribe(token: str, request: Request) -> HTMLResponse:
        actor = actor_of(request, token)
        if isinstance(actor, HTMLResponse):
            return actor
        await handlers.request_unsubscribe(actor, event_context(request), uow_factory=uow_factory)
        return pages.render(request, "unsubscribe.html", {"done": True})

    return router
