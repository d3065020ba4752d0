"""HTTP API of the notifications service: what was sent for a conference (no personal data), and
its invitation mail before anyone gets it.

- ``GET /deliveries?conference_id=``: each mail of a conference (operators and coordinators).
- ``GET /conferences/{id}/preview?language=de|en``: the invitation mail exactly as an invitee would
  get it (subject, text, HTML, calendar), with a placeholder invitee (coordinators). 404 until a
  ConferenceDrafted or ConferenceScheduled of it has arrived here.
- ``POST /conferences/{id}/test-mail`` with ``{"email": ..., "language": "de"}``: that mail, its
  subject starting "[Test] ", to the address given (coordinators); 202 with its Message-ID. At
  most ``TEST_MAILS_PER_CONFERENCE_PER_HOUR`` per conference and clock hour, then 429 with
  Retry-After; 502 when the SMTP server does not take it.

Who may call it (``quartier_shared.auth``): as above; every other role gets 403.

Thin: the query's parameter is checked (a 422 names it), a handler does the work, and the answer
is the handler's result as a response model. The response model is the HTTP contract and is
declared here on purpose; it is filled from the domain objects by field name.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Self

from fastapi import APIRouter, Depends, HTTPException, Query, Request, Response, status
from pydantic import BaseModel, ConfigDict, EmailStr, model_validator

from quartier_shared.auth import COORDINATOR, OPERATOR, allow, protected_router
from quartier_shared.events import Language
from quartier_shared.http import event_context, no_store
from quartier_shared.pagination import PAGE, PageRequest, announce_next

from . import handlers
from .commands import SendTestMail
from .domain import DeliveryStatus
from .handlers import ConferenceUnknown, TestMailLimit, TestMailNotSent, TooManyTestMails
from .sending import Mailer, SendingPolicy
from .unit_of_work import UnitOfWorkFactory


class DeliveryOut(BaseModel):
    id: str
    # "invitation", "confirmation" (of an answer), "update", "cancellation", "reminder" or "notice"
    kind: str
    resend: int  # invitations: 0, or the n-th resend
    reminder_id: str | None  # reminders: which one
    invitation_id: str
    conference_id: str
    actor_id: str
    # pending, waiting_for_contact, sending, deferred (the server answered "not now": tried again
    # at next_attempt_at), sent, failed, cancelled
    status: DeliveryStatus
    message_id: str | None
    reason: str | None  # failed, cancelled: why; deferred: the server's last answer
    next_attempt_at: datetime | None  # deferred: when it is tried again (else null)
    deferrals: int  # "not now" answers so far

    @model_validator(mode="after")
    def _next_attempt_only_while_deferred(self) -> Self:
        # The record keeps the last one after the mail went out; it means nothing then.
        if self.status is not DeliveryStatus.DEFERRED:
            self.next_attempt_at = None
        return self


class PreviewOut(BaseModel):
    conference_id: str
    language: Language
    subject: str
    text: str
    html: str
    calendar: str


class TestMailIn(BaseModel):
    __test__ = False  # a "Test..." class, not one for pytest to collect
    model_config = ConfigDict(extra="forbid")

    email: EmailStr
    language: Language = "de"


class TestMailOut(BaseModel):
    __test__ = False
    message_id: str


def build_router(
    uow_factory: UnitOfWorkFactory, *, mailer: Mailer, policy: SendingPolicy, limit: TestMailLimit
) -> APIRouter:
    router = protected_router(tags=["deliveries"], dependencies=[Depends(no_store)])

    @router.get("/deliveries", response_model=list[DeliveryOut], dependencies=[allow(OPERATOR, COORDINATOR)])
    async def deliveries(
        request: Request,
        response: Response,
        conference_id: Annotated[str, Query(min_length=1, max_length=100)],
        page: PageRequest = PAGE,
    ) -> list[DeliveryOut]:
        """By id, in pages (``limit``, and the ``Link: rel="next"`` header for the next one)."""
        context = event_context(request)
        found = await handlers.deliveries_for(conference_id, context, uow_factory=uow_factory, page=page)
        announce_next(response, request, found, page.limit)
        return [DeliveryOut.model_validate(d, from_attributes=True) for d in found.items]

    @router.get(
        "/conferences/{conference_id}/preview",
        response_model=PreviewOut,
        dependencies=[allow(COORDINATOR)],
        tags=["preview"],
    )
    async def preview(conference_id: str, request: Request, language: Language = "de") -> PreviewOut:
        """The invitation mail as an invitee would get it, for a placeholder invitee."""
        try:
            found = await handlers.preview_mail(
                conference_id, language, event_context(request), uow_factory=uow_factory, policy=policy
            )
        except ConferenceUnknown:
            raise _unknown(conference_id) from None
        return PreviewOut(conference_id=conference_id, language=language, **vars(found))

    @router.post(
        "/conferences/{conference_id}/test-mail",
        status_code=status.HTTP_202_ACCEPTED,
        response_model=TestMailOut,
        dependencies=[allow(COORDINATOR)],
        tags=["preview"],
    )
    async def test_mail(conference_id: str, body: TestMailIn, request: Request) -> TestMailOut:
        """Sends the invitation mail, marked "[Test] ", to the address given."""
        command = SendTestMail(conference_id=conference_id, email=body.email, language=body.language)
        context = event_context(request)
        try:
            sent = await handlers.send_test_mail(
                command, context, uow_factory=uow_factory, mailer=mailer, policy=policy, limit=limit
            )
        except ConferenceUnknown:
            raise _unknown(conference_id) from None
        except TooManyTestMails as exc:
            detail = f"at most {limit.per_hour} test mails per conference and hour; {exc}"
            headers = {"Retry-After": str(exc.retry_after_seconds)}
            raise HTTPException(status.HTTP_429_TOO_MANY_REQUESTS, detail=detail, headers=headers) from None
        except TestMailNotSent as exc:
            raise HTTPException(status.HTTP_502_BAD_GATEWAY, detail=f"the mail server did not take it: {exc}") from None
        return TestMailOut(message_id=sent)

    return router


def _unknown(conference_id: str) -> HTTPException:
    return HTTPException(
        status.HTTP_404_NOT_FOUND, detail=f"conference {conference_id} not found (or its event has not arrived yet)"
    )
