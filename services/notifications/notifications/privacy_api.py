"""HTTP API of the data-protection officer in the notifications service (role
``data_protection`` only; 401 without a token, 403 for every other role, before anything is read).

- ``GET /actors/{id}/export``: this service's part of an actor's export (GDPR Art. 15), the
  document ``quartier privacy export`` puts under ``"notifications"``: its contact copy (name,
  address, language, consent, whether it is erased) and its deliveries by id (kind, status,
  Message-ID, the redacted reason, the conference, when it finished; a notice, which belongs to
  no conference, has no conference title or start). Mail bodies are not stored,
  so they are not in it. At most ``EXPORT_LIMIT`` deliveries; ``truncated`` says when there may
  be more. An actor this service never saw answers an empty part, not 404.
"""

from __future__ import annotations

from datetime import datetime

from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel

from quartier_shared.auth import DATA_PROTECTION, Principal, allow, protected_router
from quartier_shared.events import Language
from quartier_shared.http import event_context, no_store

from . import handlers
from .api import DeliveryOut
from .unit_of_work import UnitOfWorkFactory

OFFICER = allow(DATA_PROTECTION)


class ContactOut(BaseModel):
    name: str
    email: str
    language: Language
    consent_to_notifications: bool
    active: bool
    erased: bool
    revision: int


class ExportedDeliveryOut(DeliveryOut):
    conference_title: str | None  # None: a notice (GDPR Art. 14), of no conference
    conference_starts_at: datetime | None
    finished_at: datetime | None  # None: not finished yet


class NotificationsPart(BaseModel):
    """What the notifications service holds about the actor."""

    actor_id: str
    contact: ContactOut | None
    deliveries: list[ExportedDeliveryOut]  # by id
    truncated: bool


def build_privacy_router(uow_factory: UnitOfWorkFactory) -> APIRouter:
    router = protected_router(tags=["personal data"], dependencies=[Depends(no_store)])

    @router.get("/actors/{actor_id}/export", response_model=NotificationsPart)
    async def export(actor_id: str, request: Request, _: Principal = OFFICER) -> NotificationsPart:
        found = await handlers.export_contact(actor_id, event_context(request), uow_factory=uow_factory)
        deliveries = [
            ExportedDeliveryOut.model_validate(
                {
                    **DeliveryOut.model_validate(delivery, from_attributes=True).model_dump(),
                    # A notice's conference is a placeholder: it is not shown.
                    "conference_title": delivery.conference.title if delivery.has_conference else None,
                    "conference_starts_at": delivery.conference.starts_at if delivery.has_conference else None,
                    "finished_at": finished_at,
                }
            )
            for delivery, finished_at in found.deliveries
        ]
        contact = None if found.contact is None else ContactOut.model_validate(found.contact, from_attributes=True)
        return NotificationsPart(actor_id=actor_id, contact=contact, deliveries=deliveries, truncated=found.truncated)

    return router
