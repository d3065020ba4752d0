"""HTTP API of the conferences service (city coordinators schedule and follow conferences).

Who may call what (``quartier_shared.auth``): coordinators everything; a quarter manager reads
the conferences of their districts (``GET /conferences`` without ``district`` gives them only
those); every other role gets 403.

Thin: the request models check the input (a 422 names the field), a handler does the work, and
the answer is the handler's result as a response model. The response models are the HTTP contract
and are declared here on purpose; they are filled from the domain objects by field name.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import asdict
from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, HTTPException, Query, Request, status
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, StringConstraints, ValidationInfo, field_validator

from quartier_shared.auth import (
    COORDINATOR,
    QUARTER_MANAGER,
    Principal,
    allow,
    may_read,
    protected_router,
    require_readable,
)
from quartier_shared.catalogue import DistrictCode
from quartier_shared.events import Venue
from quartier_shared.http import event_context

from . import handlers
from .commands import ScheduleConference
from .domain import Conference, ConferenceNotFound, InvitationStatus
from .unit_of_work import UnitOfWorkFactory

Text = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=300)]


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

    @field_validator("starts_at")
    @classmethod
    def _in_future(cls, value: datetime) -> datetime:
        if value <= datetime.now(UTC):
            raise ValueError("must be in the future")
        return value

    @field_validator("ends_at")
    @classmethod
    def _after_start(cls, value: datetime, info: ValidationInfo) -> datetime:
        starts_at = info.data.get("starts_at")
        if starts_at is not None and value <= starts_at:
            raise ValueError("must be after starts_at")
        return value


class InvitationOut(BaseModel):
    id: str
    actor_id: str
    status: InvitationStatus
    reason: str | None = None
    updated_at: datetime


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
    status: str
    sequence: int
    created_at: datetime


class ConferenceDetailOut(ConferenceOut):
    invitations: list[InvitationOut]
    counts: dict[str, int] = Field(description="invitations per status, and in total")


READERS = allow(COORDINATOR, QUARTER_MANAGER)


def build_router(uow_factory: UnitOfWorkFactory) -> APIRouter:
    router = protected_router(tags=["conferences"])

    @router.post(
        "/conferences",
        status_code=status.HTTP_201_CREATED,
        response_model=ConferenceOut,
        dependencies=[allow(COORDINATOR)],
    )
    async def schedule(body: ConferenceIn, request: Request) -> ConferenceOut:
        """Schedules a conference; invitations to every invitable actor of the district follow."""
        command = ScheduleConference(**body.model_dump(exclude={"venue"}), venue=Venue(**body.venue.model_dump()))
        conference = await handlers.schedule_conference(command, event_context(request), uow_factory=uow_factory)
        return _out(conference)

    @router.get("/conferences/{conference_id}", response_model=ConferenceDetailOut)
    async def get(conference_id: str, request: Request, principal: Principal = READERS) -> ConferenceDetailOut:
        try:
            conference, invitations = await handlers.conference_with_invitations(
                conference_id, event_context(request), uow_factory=uow_factory
            )
        except ConferenceNotFound:
            raise HTTPException(status.HTTP_404_NOT_FOUND, detail=f"conference {conference_id} not found") from None
        require_readable(principal, [conference.district])
        counts = Counter(i.status for i in invitations)
        detail = {
            **asdict(conference),
            "invitations": invitations,
            "counts": {**{s.value: counts[s] for s in InvitationStatus}, "total": len(invitations)},
        }
        return ConferenceDetailOut.model_validate(detail, from_attributes=True)

    @router.get("/conferences", response_model=list[ConferenceOut])
    async def list_conferences(
        request: Request,
        district: Annotated[DistrictCode | None, Query(description="district code, e.g. IV")] = None,
        principal: Principal = READERS,
    ) -> list[ConferenceOut]:
        if district is not None:
            require_readable(principal, [district])
        found = await handlers.conferences_by_district(district, event_context(request), uow_factory=uow_factory)
        return [_out(c) for c in found if may_read(principal, [c.district])]

    return router


def _out(conference: Conference) -> ConferenceOut:
    return ConferenceOut.model_validate(conference, from_attributes=True)
