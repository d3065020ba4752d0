"""The answer page: ``GET``/``POST /rsvp/{token}``, where an invitee answers without an account.

The contract:
- The personal link is the credential: no staff token. ``links.verify`` with ``LINK_VERIFY_KEY``
  decides. A token that is not ours (tampered, another key, garbage) or names no invitation we
  hold: the 404 page. A genuine one whose time is over, or whose conference was cancelled or has
  begun: the 410 page. Nothing is recorded either way.
- ``GET`` shows the conference (title, date, time, place, agenda), the current answer, and the
  form filled with it. ``POST`` (a form post) checks every field: bad ones give the form again,
  status 422, each error next to its field (``aria-describedby``, ``aria-invalid``). A good one
  is stored on the invitation with its ``InvitationAnswered`` (handlers.answer_invitation); it
  replaces an earlier answer.
- Cross-site posts: the form is bound to the token in its URL (another site cannot know it), and
  a post whose ``Origin`` (or ``Referer``) names another site is refused with 403
  (``web.same_origin``). Pages send ``Referrer-Policy: same-origin``, so the link never leaks to
  another site as a Referer.
- Every page carries ``web.SECURITY_HEADERS`` (CSP, ``no-store``).
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import cache
from typing import Annotated, Any, Literal

from babel import Locale
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse
from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, StrictBool, ValidationError

from quartier_shared import links
from quartier_shared.http import event_context
from quartier_shared.inputs import SafeText, unsafe_character
from quartier_shared.logging import get_logger
from quartier_shared.web import Pages, choose_language, same_origin

from . import handlers
from .commands import AnswerInvitation
from .domain import Conference, ConferenceGone, Invitation, InvitationNotFound
from .unit_of_work import UnitOfWorkFactory

log = get_logger(__name__)

# The languages the select offers first: those most asked for at Essen's conferences. Any other
# ISO 639-1 code is accepted too (a post may come from an older form).
COMMON_INTERPRETER_LANGUAGES = ("ar", "fa", "uk", "ru", "tr", "ku", "ps", "ti", "so", "ro", "bg", "pl", "fr", "en")


@cache
def iso_639_1() -> frozenset[str]:
    """Every two-letter language code (CLDR, through Babel)."""
    codes = (str(code) for code in Locale("en").languages)
    return frozenset(code for code in codes if len(code) == 2 and code.isalpha() and code.islower())


def _empty_is_none(value: object) -> object:
    return None if isinstance(value, str) and not value.strip() else value


def _iso_code(value: str) -> str:
    if value not in iso_639_1():
        raise ValueError("not an ISO 639-1 language code")
    return value


def _comment(value: str) -> str:
    """Free text as SafeText has it, but line breaks are allowed: a comment may have paragraphs."""
    value = value.replace("\r\n", "\n").strip()
    if any(unsafe_character(line) for line in value.split("\n")):
        raise ValueError("contains control or invisible characters")
    if len(value) > 500:
        raise ValueError("must have at most 500 characters")
    return value


EmptyIsNone = BeforeValidator(_empty_is_none)  # an empty field is an unanswered one
_name = SafeText(200).func  # the rules of names everywhere: no control, bidi or invisible characters


class AnswerForm(BaseModel):
    """The posted form, field by field; a ValidationError's ``loc`` names the field."""

    model_config = ConfigDict(extra="ignore")

    answer: Literal["accepted", "declined", "tentative"]
    attendees: int = Field(ge=1, le=10)
    representative: Annotated[str | None, EmptyIsNone, AfterValidator(lambda v: v and _name(v))] = None
    interpreter_language: Annotated[str | None, EmptyIsNone, AfterValidator(lambda v: v and _iso_code(v))] = None
    # A checkbox is sent as "yes" when ticked and not at all otherwise.
    accessibility: Annotated[StrictBool, BeforeValidator(lambda v: True if v == "yes" else v)] = False
    childcare: Annotated[int, BeforeValidator(lambda v: 0 if _empty_is_none(v) is None else v)] = Field(0, ge=0, le=10)
    comment: Annotated[str | None, EmptyIsNone, AfterValidator(lambda v: v and _comment(v))] = None


# The error shown next to each field (translated on the page); the same for every way it is wrong.
FIELD_ERRORS = {
    "answer": "Please choose whether you will come.",
    "attendees": "Please enter how many people will come: a number from 1 to 10.",
    "representative": "Please enter a name of at most 200 characters, without control characters.",
    "interpreter_language": "Please choose a language from the list.",
    "accessibility": "Please tick the box or leave it empty.",
    "childcare": "Please enter the number of children needing care: a number from 0 to 10.",
    "comment": "Please enter at most 500 characters, without control characters.",
}


def build_pages_router(
    uow_factory: UnitOfWorkFactory, pages: Pages, *, verify_key: str | None, public_base_url: str
) -> APIRouter:
    router = APIRouter(include_in_schema=False)
    # Read at start-up: a key setting that names no key stops the service, not the first visitor.
    public_key: Ed25519PublicKey | None = links.load_public_key(verify_key) if verify_key else None

    async def opened(request: Request, token: str) -> tuple[Conference, Invitation] | HTMLResponse:
        """The conference and invitation the link names, or the page saying why not."""
        key = public_key
        if key is None:
            log.error("link_verify_key_missing")
            return message(request, "unavailable", 503)
        try:
            claims = links.verify(token, key)
            return await handlers.invitation_to_answer(
                claims.invitation_id, event_context(request), uow_factory=uow_factory
            )
        except (links.InvalidLink, InvitationNotFound):
            return message(request, "unknown", 404)
        except (links.ExpiredLink, ConferenceGone):
            return message(request, "gone", 410)

    def message(request: Request, reason: str, status_code: int) -> HTMLResponse:
        _ = pages.gettext(choose_language(request))
        heading, text, kind = {
            "unknown": (
                _("This link is not valid"),
                _("Please check that you opened the whole link from your invitation e-mail."),
                "danger",
            ),
            "gone": (
                _("This conference takes no more answers"),
                _("The conference has been cancelled or has already begun. Nothing was recorded."),
                "warning",
            ),
            "unavailable": (
                _("Answers cannot be taken right now"),
                _("Please try again later."),
                "danger",
            ),
            "cross_site": (
                _("This form was sent from another website"),
                _("Please open the link from your invitation e-mail and answer there. Nothing was recorded."),
                "danger",
            ),
        }[reason]
        context = {"heading": heading, "text": text, "kind": kind}
        return pages.render(request, "message.html", context, status_code=status_code)

    def form_page(
        request: Request,
        conference: Conference,
        invitation: Invitation,
        values: Mapping[str, Any],
        errors: Mapping[str, str] | None = None,
        *,
        saved: bool = False,
        status_code: int = 200,
    ) -> HTMLResponse:
        language = choose_language(request)
        _ = pages.gettext(language)
        names = Locale(language).languages
        others = sorted(iso_639_1() - set(COMMON_INTERPRETER_LANGUAGES), key=lambda c: names.get(c, c))
        context = {
            "conference": conference,
            "current": invitation.answer,
            "values": values,
            "errors": {field: _(text) for field, text in (errors or {}).items()},
            "saved": saved,
            "common_languages": [(c, names.get(c, c)) for c in COMMON_INTERPRETER_LANGUAGES],
            "other_languages": [(c, names.get(c, c)) for c in others],
            "language_name": lambda code: names.get(code, code),
        }
        return pages.render(request, "rsvp.html", context, status_code=status_code, language=language)

    @router.get("/rsvp/{token}", response_class=HTMLResponse)
    async def show(token: str, request: Request) -> HTMLResponse:
        found = await opened(request, token)
        if isinstance(found, HTMLResponse):
            return found
        conference, invitation = found
        return form_page(request, conference, invitation, _values_of(invitation))

    @router.post("/rsvp/{token}", response_class=HTMLResponse)
    async def answer(token: str, request: Request) -> HTMLResponse:
        if not same_origin(request, public_base_url):
            return message(request, "cross_site", 403)
        found = await opened(request, token)
        if isinstance(found, HTMLResponse):
            return found
        conference, invitation = found
        posted = {name: value for name, value in (await request.form()).items() if isinstance(value, str)}
        try:
            form = AnswerForm.model_validate(posted)
        except ValidationError as error:
            errors = {str(e["loc"][0]): FIELD_ERRORS[str(e["loc"][0])] for e in error.errors() if e["loc"]}
            # Fields only by name in the log: their values may be a name.
            log.info("answer_refused", invitation_id=invitation.id, fields=sorted(errors))
            return form_page(request, conference, invitation, posted, errors, status_code=422)
        command = AnswerInvitation(invitation_id=invitation.id, **form.model_dump())
        try:
            conference, invitation = await handlers.answer_invitation(
                command, event_context(request), uow_factory=uow_factory
            )
        except ConferenceGone:  # it began between the page and the post
            return message(request, "gone", 410)
        except InvitationNotFound:  # its actor was erased between the page and the post
            return message(request, "unknown", 404)
        return form_page(request, conference, invitation, _values_of(invitation), saved=True)

    return router


def _values_of(invitation: Invitation) -> dict[str, Any]:
    """The form's values: the current answer, or what most answers are."""
    answer = invitation.answer
    if answer is None:
        return {"answer": "", "attendees": "1", "childcare": "0"}
    return {
        "answer": answer.answer,
        "attendees": str(answer.attendees),
        "representative": answer.representative or "",
        "interpreter_language": answer.interpreter_language or "",
        "accessibility": "yes" if answer.accessibility else "",
        "childcare": str(answer.childcare),
        "comment": answer.comment or "",
    }
