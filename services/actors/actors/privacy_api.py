"""HTTP API of the data-protection officer (role ``data_protection`` only; everyone else 403,
before anything is read): an actor's audit log, its export (GDPR Art. 15) and its erasure
(Art. 17).

- ``GET /actors/{id}/audit``: who read, exported or erased the actor, when; oldest first, in
  pages (``quartier_shared.pagination``).
- ``GET /actors/{id}/export``: one JSON document, ``{"format", "actor_id", "exported_at",
  "actors": {...}}``; the services that hold more of the actor add their part under their own
  name (``"conferences"``, ``"notifications"``) when a gatherer puts the parts together. The
  export is audited.
- ``POST /actors/{id}/erasure``: erases the actor here at once and asks the other services to
  erase theirs (``ActorErased``); asking again changes nothing. The answer, like ``GET`` of the
  same path, is the erasure's state: when each service finished, or ``pending``.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Literal

from fastapi import APIRouter, Depends, HTTPException, Request, Response, status
from pydantic import BaseModel, ConfigDict

from quartier_shared.auth import DATA_PROTECTION, Principal, allow, protected_router
from quartier_shared.http import event_context, no_store
from quartier_shared.pagination import PAGE, PageRequest, announce_next

from . import handlers
from .api import ActorOut, ConsentOut, not_found_is_404
from .commands import EraseActor
from .erasure import ERASING_SERVICES, Erasure
from .unit_of_work import UnitOfWorkFactory

EXPORT_FORMAT = "quartier-export/1"
OFFICER = allow(DATA_PROTECTION)


class AuditEntryOut(BaseModel):
    id: str
    actor_id: str
    action: str
    by: str | None
    at: datetime


class ServiceErasureOut(BaseModel):
    service: str
    status: Literal["finished", "pending"]
    finished_at: datetime | None


class ErasureOut(BaseModel):
    actor_id: str
    requested_by: str | None
    requested_at: datetime
    complete: bool
    services: list[ServiceErasureOut]  # one per service that holds the actor's data


class ActorsPart(BaseModel):
    """What the actors service holds about the actor."""

    registry_entry: ActorOut  # as GET /actors/{id} shows it
    consent_history: list[ConsentOut]  # oldest first
    audit: list[AuditEntryOut]  # oldest first, this export included
    erasure: ErasureOut | None


class ExportOut(BaseModel):
    """One actor's data (GDPR Art. 15). Each service's part under its name: ``actors`` here; a
    gatherer adds ``conferences`` and ``notifications`` beside it."""

    model_config = ConfigDict(extra="allow")

    format: str = EXPORT_FORMAT  # a new major number when a key changes meaning
    actor_id: str
    exported_at: datetime
    actors: ActorsPart


def build_privacy_router(uow_factory: UnitOfWorkFactory) -> APIRouter:
    router = protected_router(tags=["personal data"], dependencies=[Depends(no_store)])

    @router.get("/actors/{actor_id}/audit", response_model=list[AuditEntryOut])
    async def audit(
        actor_id: str, request: Request, response: Response, page: PageRequest = PAGE, _: Principal = OFFICER
    ) -> list[AuditEntryOut]:
        with not_found_is_404():
            found = await handlers.audit_of(actor_id, event_context(request), uow_factory=uow_factory, page=page)
        announce_next(response, request, found, page.limit)
        return [AuditEntryOut.model_validate(entry, from_attributes=True) for entry in found.items]

    @router.get("/actors/{actor_id}/export", response_model=ExportOut)
    async def export(actor_id: str, request: Request, _: Principal = OFFICER) -> ExportOut:
        with not_found_is_404():
            found = await handlers.export_actor(actor_id, event_context(request), uow_factory=uow_factory)
        actor = ActorOut.model_validate(found.actor, from_attributes=True)
        part = ActorsPart(
            registry_entry=actor,
            consent_history=actor.consent_history,
            audit=[AuditEntryOut.model_validate(e, from_attributes=True) for e in found.audit],
            erasure=None if found.erasure is None else _erasure_out(found.erasure),
        )
        return ExportOut(actor_id=actor_id, exported_at=datetime.now(UTC), actors=part)

    @router.post("/actors/{actor_id}/erasure", response_model=ErasureOut)
    async def erase(actor_id: str, request: Request, principal: Principal = OFFICER) -> ErasureOut:
        command = EraseActor(actor_id, by=principal.subject)
        with not_found_is_404():
            return _erasure_out(await handlers.erase_actor(command, event_context(request), uow_factory=uow_factory))

    @router.get("/actors/{actor_id}/erasure", response_model=ErasureOut)
    async def erasure(actor_id: str, request: Request, _: Principal = OFFICER) -> ErasureOut:
        with not_found_is_404():
            try:
                found = await handlers.erasure_of(actor_id, event_context(request), uow_factory=uow_factory)
            except handlers.NotErased:
                raise HTTPException(status.HTTP_404_NOT_FOUND, detail=f"actor {actor_id} was not erased") from None
        return _erasure_out(found)

    return router


def _erasure_out(erasure: Erasure) -> ErasureOut:
    services = [
        ServiceErasureOut(
            service=name,
            status="finished" if name in erasure.finished else "pending",
            finished_at=erasure.finished.get(name),
        )
        for name in ERASING_SERVICES
    ]
    return ErasureOut(
        actor_id=erasure.actor_id,
        requested_by=erasure.requested_by,
        requested_at=erasure.requested_at,
        complete=erasure.complete,
        services=services,
    )
