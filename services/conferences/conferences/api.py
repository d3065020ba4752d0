"""HTTP API of the conferences service (city coordinators schedule and follow conferences).

Before and after the fan-out: ``POST /conferences`` with ``"draft": true`` stores a draft and
invites nobody; ``POST /conferences/{id}/publish`` schedules it (200; publishing a conference that
is scheduled already answers 200 with it, unchanged; one whose start has passed 409).
``POST /conferences/{id}/invitations/{invitation_id}/resend`` sends one invitation again (202;
409 for a draft or a conference that has started).

``audience`` says who a conference invites: ``district`` (the default) every invitable actor of
the district, ``team`` only those who are members of the district's competence team.

Changes (coordinators): ``PATCH /conferences/{id}`` changes any of title, starts_at, ends_at, venue
and agenda, checked as for a new conference (200 with the conference; 409 when cancelled or
started). ``DELETE /conferences/{id}?reason=...`` cancels (200 with the cancelled conference; a
second DELETE answers the same, nothing raised again; 409 once started).
``POST /conferences/{id}/reminders`` nudges those without an answer (202; 429 with Retry-After
within an hour of the last nudge; 409 for a draft, a cancelled or a started conference).

Who may call what (``quartier_shared.auth``): coordinators everything; a quarter manager reads
the conferences of their districts (``GET /conferences`` without ``district`` gives them only
those); every other role gets 403.

Thin: the request models check the input (a 422 names the field), a handler does the work, and
the answer is the handler's result as a response model. The response models are the HTTP contract
and are declared here on purpose; they are filled from the domain objects by field name.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import asdict
from datetime import UTC, datetime, timedelta
from typing import Annotated, get_args
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Depends, HTTPException, Query, Request, Response, status
from fastapi.exceptions import RequestValidationError
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, ValidationInfo, field_validator

from quartier_shared.auth import (
    COORDINATOR,
    QUARTER_MANAGER,
    Principal,
    allow,
    protected_router,
    readable_districts,
    require_readable,
)
from quartier_shared.catalogue import DistrictCode, load_catalogue
from quartier_shared.events import Answer, Audience, Venue
from quartier_shared.http import event_context, no_store
from quartier_shared.inputs import SafeText, StrictBool
from quartier_shared.pagination import PAGE, PageRequest, announce_next

from . import changes, handlers, reminders
from .commands import (
    CancelConference,
    ChangeConference,
    PublishConference,
    RemindConference,
    ResendInvitation,
    ScheduleConference,
)
from .domain import (
    LONGEST,
    Conference,
    ConferenceNotFound,
    InvalidChange,
    Invitation,
    InvitationNotFound,
    InvitationStatus,
    NotNow,
)
from .unit_of_work import UnitOfWorkFactory

Text = Annotated[str, SafeText(300)]

# How far ahead a conference may be scheduled (how long it may last: the domain's LONGEST).
HORIZON = timedelta(days=2 * 366)


def _offset(delta: timedelta) -> str:
    minutes = int(delta.total_seconds()) // 60
    sign = "-" if minutes < 0 else "+"
    hours, minutes = divmod(abs(minutes), 60)
    return f"{sign}{hours:02d}:{minutes:02d}"


def _in_city_time(value: datetime) -> datetime:
    """A time in UTC is taken as it is; any other offset must be the city's at that instant, so
    the mail never shows another hour than the coordinator typed."""
    given = value.utcoffset()
    if not given:
        return value
    catalogue = load_catalogue()
    expected = value.astimezone(ZoneInfo(catalogue.timezone)).utcoffset()
    if given != expected:
        assert expected is not None
        raise ValueError(
            f"the offset {_offset(given)} is not {catalogue.city}'s at that time ({catalogue.timezone}); "
            f"use {_offset(expected)}, or give the time in UTC with Z"
        )
    return value


class VenueIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: Text
    address: Text


class ConferenceIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    district: DistrictCode
    title: Text
    starts_at: AwareDatetime = Field(description="with its UTC offset, e.g. 2027-03-04T17:00:00+01:00")
    ends_at: AwareDatetime
    venue: VenueIn
    agenda: list[Text] = Field(default_factory=list, max_length=50)
    draft: StrictBool = Field(default=False, description="true: store it as a draft and invite nobody yet")
    audience: Audience = Field(
        default="district",
        description="district: every invitable actor of the district; team: only the members of its competence team",
    )

    @field_validator("starts_at")
    @classmethod
    def _in_future(cls, value: datetime) -> datetime:
        return _start(value)

    @field_validator("ends_at")
    @classmethod
    def _after_start(cls, value: datetime, info: ValidationInfo) -> datetime:
        return _end(value, info)


def _start(value: datetime) -> datetime:
    now = datetime.now(UTC)
    if value <= now:
        raise ValueError("must be in the future")
    if value > now + HORIZON:
        raise ValueError("must be within two years from now")
    return _in_city_time(value)


def _end(value: datetime, info: ValidationInfo) -> datetime:
    """After the start given with it (a change checks it against the stored start: the domain)."""
    starts_at = info.data.get("starts_at")
    if starts_at is not None and value <= starts_at:
        raise ValueError("must be after starts_at")
    if starts_at is not None and value - starts_at > LONGEST:
        raise ValueError("a conference lasts at most 24 hours")
    return _in_city_time(value)


class ConferenceChangeIn(BaseModel):
    """The fields to change, each checked as for a new conference; a field left out stays as it
    is, and none may be null."""

    model_config = ConfigDict(extra="forbid")

    title: Text | None = None
    starts_at: AwareDatetime | None = Field(default=None, description="with its UTC offset")
    ends_at: AwareDatetime | None = None
    venue: VenueIn | None = None
    agenda: list[Text] | None = Field(default=None, max_length=50)

    @field_validator("title", "starts_at", "ends_at", "venue", "agenda", mode="before")
    @classmethod
    def _not_null(cls, value: object) -> object:
        if value is None:
            raise ValueError("may be left out, but not null")
        return value

    @field_validator("starts_at")
    @classmethod
    def _in_future(cls, value: datetime | None) -> datetime | None:
        return None if value is None else _start(value)

    @field_validator("ends_at")
    @classmethod
    def _after_start(cls, value: datetime | None, info: ValidationInfo) -> datetime | None:
        return None if value is None else _end(value, info)


Reason = Annotated[str, SafeText(500)]


class AnswerOut(BaseModel):
    answer: Answer
    attendees: int
    representative: str | None = None
    interpreter_language: str | None = None
    accessibility: bool = Field(description="step-free access needed")
    childcare: int = Field(description="children needing care")
    comment: str | None = None
    answered_at: datetime


class InvitationOut(BaseModel):
    id: str
    actor_id: str
    status: InvitationStatus
    reason: str | None = None
    updated_at: datetime
    resend: int = Field(description="resends so far; the status is that of the latest attempt")
    answer: AnswerOut | None = Field(default=None, description="the latest answer by personal link; null until one")
    unsubscribed: bool = Field(
        default=False,
        description="the actor no longer consents to mails (unsubscribed by the link in a mail, or withdrawn "
        "by staff): no further mail of any kind reaches them",
    )


class NeedsOut(BaseModel):
    interpreters: dict[str, int] = Field(description="people coming who need an interpreter, per ISO 639-1 code")


class ConferenceOut(BaseModel):
    id: str
    district: str
    district_name: str
    title: str
    starts_at: datetime
    ends_at: datetime
    timezone: str
    venue: Venue
    agenda: list[str]
    status: str = Field(description="draft, scheduled or cancelled")
    sequence: int
    created_at: datetime
    audience: Audience = Field(description="district (every invitable actor) or team (the competence team only)")


class ConferenceDetailOut(ConferenceOut):
    invitations: list[InvitationOut]
    counts: dict[str, int] = Field(
        description="invitations per status and in total; answers (accepted, declined, tentative, no_answer); "
        "and of the acceptances: attendees, children needing care, step_free (invitations needing step-free access)"
    )
    needs: NeedsOut


class NudgeOut(BaseModel):
    reminder_id: str = Field(description="nudge-<UTC timestamp>: what the reminders it causes name")
    due_at: datetime


READERS = allow(COORDINATOR, QUARTER_MANAGER)


def build_router(
    uow_factory: UnitOfWorkFactory,
    *,
    reminders_before: Sequence[tuple[str, timedelta]],
    wake_reminders: Callable[[], None],
) -> APIRouter:
    """``reminders_before``: REMINDERS_BEFORE, parsed; ``wake_reminders`` tells this instance's
    reminder worker that a nudge is due now."""
    router = protected_router(tags=["conferences"], dependencies=[Depends(no_store)])

    @router.post(
        "/conferences",
        status_code=status.HTTP_201_CREATED,
        response_model=ConferenceOut,
        dependencies=[allow(COORDINATOR)],
    )
    async def schedule(body: ConferenceIn, request: Request) -> ConferenceOut:
        """Schedules a conference; invitations to every invitable actor of the district follow.
        With ``"draft": true`` it is stored as a draft and nobody is invited until it is published."""
        command = ScheduleConference(**body.model_dump(exclude={"venue"}), venue=Venue(**body.venue.model_dump()))
        conference = await handlers.schedule_conference(
            command, event_context(request), uow_factory=uow_factory, reminders_before=reminders_before
        )
        return _out(conference)

    @router.post(
        "/conferences/{conference_id}/publish", response_model=ConferenceOut, dependencies=[allow(COORDINATOR)]
    )
    async def publish(conference_id: str, request: Request) -> ConferenceOut:
        """Schedules a draft: invitations to every invitable actor of the district follow. A
        conference that is scheduled already is answered as it is (200), nothing sent twice."""
        command = PublishConference(conference_id)
        try:
            conference = await handlers.publish_conference(
                command, event_context(request), uow_factory=uow_factory, reminders_before=reminders_before
            )
        except ConferenceNotFound:
            raise _not_found("conference", conference_id) from None
        except NotNow as exc:
            raise HTTPException(status.HTTP_409_CONFLICT, detail=str(exc)) from None
        return _out(conference)

    @router.patch("/conferences/{conference_id}", response_model=ConferenceOut, dependencies=[allow(COORDINATOR)])
    async def change(conference_id: str, body: ConferenceChangeIn, request: Request) -> ConferenceOut:
        """Changes what is given; every invitee is told (an update; those who accepted are asked to
        confirm a new time). Answers stay. A change that changes nothing raises nothing."""
        given = body.model_dump(exclude={"venue"}, exclude_none=True)
        venue = Venue(**body.venue.model_dump()) if body.venue is not None else None
        command = ChangeConference(conference_id, **given, venue=venue)
        try:
            conference = await changes.change_conference(
                command, event_context(request), uow_factory=uow_factory, reminders_before=reminders_before
            )
        except ConferenceNotFound:
            raise _not_found("conference", conference_id) from None
        except NotNow as exc:
            raise HTTPException(status.HTTP_409_CONFLICT, detail=str(exc)) from None
        except InvalidChange as exc:
            raise RequestValidationError(
                [{"type": "value_error", "loc": ("body", exc.field), "msg": str(exc), "input": None}]
            ) from None
        return _out(conference)

    @router.delete("/conferences/{conference_id}", response_model=ConferenceOut, dependencies=[allow(COORDINATOR)])
    async def cancel(
        conference_id: str,
        request: Request,
        reason: Annotated[Reason | None, Query(description="told to every invitee; at most 500 characters")] = None,
    ) -> ConferenceOut:
        """Cancels it: every invitee is told, nobody is invited any more, no reminder goes out.
        Cancelling a cancelled conference answers it as it is (200), nothing told twice."""
        command = CancelConference(conference_id, reason)
        try:
            conference = await changes.cancel_conference(command, event_context(request), uow_factory=uow_factory)
        except ConferenceNotFound:
            raise _not_found("conference", conference_id) from None
        except NotNow as exc:
            raise HTTPException(status.HTTP_409_CONFLICT, detail=str(exc)) from None
        return _out(conference)

    @router.post(
        "/conferences/{conference_id}/reminders",
        status_code=status.HTTP_202_ACCEPTED,
        response_model=NudgeOut,
        dependencies=[allow(COORDINATOR)],
    )
    async def nudge(conference_id: str, request: Request) -> NudgeOut:
        """Reminds every invitee who was sent the invitation and has not answered, now; once an
        hour at most (429 with Retry-After)."""
        try:
            reminder = await reminders.nudge(
                RemindConference(conference_id), event_context(request), uow_factory=uow_factory
            )
        except ConferenceNotFound:
            raise _not_found("conference", conference_id) from None
        except NotNow as exc:
            raise HTTPException(status.HTTP_409_CONFLICT, detail=str(exc)) from None
        except reminders.TooSoon as exc:
            seconds = max(1, math.ceil(exc.retry_after.total_seconds()))
            raise HTTPException(
                status.HTTP_429_TOO_MANY_REQUESTS,
                detail="a nudge was sent within the last hour",
                headers={"Retry-After": str(seconds)},
            ) from None
        wake_reminders()
        return NudgeOut(reminder_id=reminder.name, due_at=reminder.due_at)

    @router.post(
        "/conferences/{conference_id}/invitations/{invitation_id}/resend",
        status_code=status.HTTP_202_ACCEPTED,
        response_model=InvitationOut,
        dependencies=[allow(COORDINATOR)],
    )
    async def resend(conference_id: str, invitation_id: str, request: Request) -> InvitationOut:
        """Sends one invitation again, as a mail of its own; it is pending until that mail's outcome."""
        command = ResendInvitation(conference_id, invitation_id)
        try:
            invitation = await handlers.resend_invitation(command, event_context(request), uow_factory=uow_factory)
        except ConferenceNotFound:
            raise _not_found("conference", conference_id) from None
        except InvitationNotFound:
            raise _not_found("invitation", invitation_id) from None
        except NotNow as exc:
            raise HTTPException(status.HTTP_409_CONFLICT, detail=str(exc)) from None
        return InvitationOut.model_validate(invitation, from_attributes=True)

    @router.get("/conferences/{conference_id}", response_model=ConferenceDetailOut)
    async def get(conference_id: str, request: Request, principal: Principal = READERS) -> ConferenceDetailOut:
        try:
            conference, invitations = await handlers.conference_with_invitations(
                conference_id, event_context(request), uow_factory=uow_factory
            )
        except ConferenceNotFound:
            raise _not_found("conference", conference_id) from None
        require_readable(principal, [conference.district])
        unsubscribed = await handlers.unsubscribed_among(
            {i.actor_id for i in invitations}, event_context(request), uow_factory=uow_factory
        )
        counts = Counter(i.status for i in invitations)
        detail = {
            **asdict(conference),
            "invitations": [{**asdict(i), "unsubscribed": i.actor_id in unsubscribed} for i in invitations],
            "counts": {
                **{s.value: counts[s] for s in InvitationStatus},
                "total": len(invitations),
                **_answer_counts(invitations),
            },
            "needs": {"interpreters": _interpreters(invitations)},
        }
        return ConferenceDetailOut.model_validate(detail, from_attributes=True)

    @router.get("/conferences", response_model=list[ConferenceOut])
    async def list_conferences(
        request: Request,
        response: Response,
        district: Annotated[DistrictCode | None, Query(description="district code, e.g. IV")] = None,
        page: PageRequest = PAGE,
        principal: Principal = READERS,
    ) -> list[ConferenceOut]:
        """Earliest first, in pages (``limit``, and the ``Link: rel="next"`` header for the next one)."""
        if district is not None:
            require_readable(principal, [district])
        found = await handlers.conferences_by_district(
            district, event_context(request), uow_factory=uow_factory, within=readable_districts(principal), page=page
        )
        announce_next(response, request, found, page.limit)
        return [_out(c) for c in found.items]

    return router


def _not_found(what: str, id_: str) -> HTTPException:
    return HTTPException(status.HTTP_404_NOT_FOUND, detail=f"{what} {id_} not found")


def _answer_counts(invitations: list[Invitation]) -> dict[str, int]:
    """Counted from the invitations already read for the answer (as the statuses are): one
    conference has at most a district's actors."""
    answers = [i.answer for i in invitations if i.answer is not None]
    given = Counter(a.answer for a in answers)
    coming = [a for a in answers if a.coming]
    return {
        **{kind: given[kind] for kind in get_args(Answer)},
        "no_answer": len(invitations) - len(answers),
        "attendees": sum(a.attendees for a in coming),
        "children": sum(a.childcare for a in coming),
        "step_free": sum(1 for a in coming if a.accessibility),
    }


def _interpreters(invitations: list[Invitation]) -> dict[str, int]:
    """People coming per interpreter language: an organisation's whole party needs the one."""
    needed: Counter[str] = Counter()
    for answer in (i.answer for i in invitations):
        if answer is not None and answer.coming and answer.interpreter_language:
            needed[answer.interpreter_language] += answer.attendees
    return dict(sorted(needed.items()))


def _out(conference: Conference) -> ConferenceOut:
    return ConferenceOut.model_validate(conference, from_attributes=True)
