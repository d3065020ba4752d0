"""HTTP API of the data-protection officer in the conferences service (role ``data_protection``
only; 401 without a token, 403 for every other role, before anything is read).

- ``GET /actors/{id}/export``: this service's part of an actor's export (GDPR Art. 15), the
  document ``quartier privacy export`` puts under ``"conferences"``: the actor's roster entry (ids,
  districts, flags; never a name or address, this service holds none) and its invitations, by id,
  each with its status, its latest answer including the free text (the deputy's name, the
  comment; both gone once the actor was erased) and the conference it is to. At most
  ``EXPORT_LIMIT`` invitations; ``truncated`` says when there may be more. An actor this service
  never saw answers an empty part, not 404: "nothing held here" is an answer too.
"""

from __future__ import annotations

from datetime import datetime

from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel

from quartier_shared.auth import DATA_PROTECTION, Principal, allow, protected_router
from quartier_shared.http import event_context, no_store

from . import handlers
from .api import InvitationOut
from .unit_of_work import UnitOfWorkFactory

OFFICER = allow(DATA_PROTECTION)


class RosterEntryOut(BaseModel):
    districts: list[str]
    active: bool
    consent_to_notifications: bool
    revision: int
    erased: bool


class ConferenceRefOut(BaseModel):
    id: str
    district: str
    title: str
    starts_at: datetime
    ends_at: datetime
    status: str


class ExportedInvitationOut(InvitationOut):
    conference_id: str
    conference: ConferenceRefOut | None  # None: the conference is not found (any more)


class ConferencesPart(BaseModel):
    """What the conferences service holds about the actor."""

    actor_id: str
    roster_entry: RosterEntryOut | None
    invitations: list[ExportedInvitationOut]  # by id
    truncated: bool


def build_privacy_router(uow_factory: UnitOfWorkFactory) -> APIRouter:
    router = protected_router(tags=["personal data"], dependencies=[Depends(no_store)])

    @router.get("/actors/{actor_id}/export", response_model=ConferencesPart)
    async def export(actor_id: str, request: Request, _: Principal = OFFICER) -> ConferencesPart:
        found = await handlers.export_actor(actor_id, event_context(request), uow_factory=uow_factory)
        entry = found.roster_entry
        invitations = [
            ExportedInvitationOut.model_validate(
                {
                    **InvitationOut.model_validate(invitation, from_attributes=True).model_dump(),
                    "conference_id": invitation.conference_id,
                    "conference": None
                    if conference is None
                    else ConferenceRefOut.model_validate(conference, from_attributes=True),
                }
            )
            for invitation, conference in found.invitations
        ]
        return ConferencesPart(
            actor_id=actor_id,
            roster_entry=None if entry is None else RosterEntryOut.model_validate(entry, from_attributes=True),
            invitations=invitations,
            truncated=found.truncated,
        )

    return router
