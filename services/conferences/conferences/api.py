"""HTTP API of the conferences service (city coordinators schedule and follow conferences)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, HTTPException, Query, Request, status
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, StringConstraints, ValidationInfo, field_validator

from quartier_shared.catalogue import DistrictCode, load_catalogue
from quartier_shared.events import ConferenceScheduled, EventContext, Venue
from quartier_shared.http import correlation_id

from .domain import Conference, Invitation, InvitationStatus
from .repository import MongoConferenceRepository, MongoInvitationRepository
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

    @classmethod
    def of(cls, i: Invitation) -> InvitationOut:
        return cls(id=i.id, actor_id=i.actor_id, status=i.status, reason=i.reason, updated_at=i.updated_at)


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

    @classmethod
    def of(cls, c: Conference) -> ConferenceOut:
        return cls(
            id=c.id,
            district=c.district,
            district_name=c.district_name,
            title=c.title,
            starts_at=c.starts_at,
            ends_at=c.ends_at,
            timezone=c.timezone,
            venue=c.venue,
            agenda=list(c.agenda),
            status=c.status,
            sequence=c.sequence,
            created_at=c.created_at,
        )


class ConferenceDetailOut(ConferenceOut):
    invitations: list[InvitationOut]
    counts: dict[str, int] = Field(description="invitations per status, and in total")


def build_router(uow_factory: UnitOfWorkFactory, context_for: Callable[[str], EventContext]) -> APIRouter:
    router = APIRouter(tags=["conferences"])

    @router.post("/conferences", status_code=status.HTTP_201_CREATED, response_model=ConferenceOut)
    async def schedule(body: ConferenceIn, request: Request) -> ConferenceOut:
        """Schedules a conference; invitations to every invitable actor of the district follow."""
        catalogue = load_catalogue()
        district = catalogue.district(body.district)
        assert district is not None  # DistrictCode validated it
        conference = Conference.schedule(
            district=district.code,
            district_name=district.name,
            timezone=catalogue.timezone,
            title=body.title,
            starts_at=body.starts_at,
            ends_at=body.ends_at,
            venue=Venue(name=body.venue.name, address=body.venue.address),
            agenda=body.agenda,
        )
        async with uow_factory(context_for(correlation_id(request))) as uow:
            await uow.conferences.add(conference)
            uow.record(ConferenceScheduled(conference_id=conference.id, details=conference.details))
            await uow.commit()
        return ConferenceOut.of(conference)

    @router.get("/conferences/{conference_id}", response_model=ConferenceDetailOut)
    async def get(conference_id: str, request: Request) -> ConferenceDetailOut:
        db = request.app.state.runtime.db
        conference = await MongoConferenceRepository(db).get(conference_id)
        if conference is None:
            raise HTTPException(status.HTTP_404_NOT_FOUND, detail=f"conference {conference_id} not found")
        invitations = await MongoInvitationRepository(db).for_conference(conference_id)
        counts = Counter(i.status.value for i in invitations)
        return ConferenceDetailOut(
            **ConferenceOut.of(conference).model_dump(),
            invitations=[InvitationOut.of(i) for i in invitations],
            counts={**{s.value: counts.get(s.value, 0) for s in InvitationStatus}, "total": len(invitations)},
        )

    @router.get("/conferences", response_model=list[ConferenceOut])
    async def list_conferences(
        request: Request,
        district: Annotated[DistrictCode | None, Query(description="district code, e.g. IV")] = None,
    ) -> list[ConferenceOut]:
        conferences = await MongoConferenceRepository(request.app.state.runtime.db).find(district)
        return [ConferenceOut.of(c) for c in conferences]

    return router
