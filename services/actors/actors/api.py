"""HTTP API of the actors service (quarter managers keep the registry current)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Query, Request, status
from pydantic import BaseModel, ConfigDict, EmailStr, Field, StringConstraints

from quartier_shared.catalogue import ActorKindName, Catalogue, DistrictCode, load_catalogue
from quartier_shared.http import correlation_id

from . import service
from .domain import Actor, ActorNotFound, Language
from .repository import MongoActorRepository
from .unit_of_work import MongoActorsUnitOfWork

Name = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]


class ActorIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: Name
    kind: ActorKindName
    districts: list[DistrictCode] = Field(min_length=1)
    email: EmailStr
    language: Language = "de"
    consent_to_notifications: bool


class ActorPatch(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: Name | None = None
    kind: ActorKindName | None = None
    districts: list[DistrictCode] | None = Field(default=None, min_length=1)
    email: EmailStr | None = None
    language: Language | None = None
    consent_to_notifications: bool | None = None


class ActorOut(BaseModel):
    id: str
    name: str
    kind: str
    districts: list[str]
    email: str
    language: Language
    consent_to_notifications: bool
    active: bool
    revision: int
    created_at: datetime
    updated_at: datetime

    @classmethod
    def of(cls, actor: Actor) -> ActorOut:
        return cls(
            id=actor.id,
            name=actor.name,
            kind=actor.kind,
            districts=list(actor.districts),
            email=actor.email,
            language=actor.language,
            consent_to_notifications=actor.consent_to_notifications,
            active=actor.active,
            revision=actor.revision,
            created_at=actor.created_at,
            updated_at=actor.updated_at,
        )


def build_router(uow_for: Callable[[str], MongoActorsUnitOfWork]) -> APIRouter:
    """``uow_for(correlation_id)`` makes a unit of work whose events carry that correlation id."""
    router = APIRouter(tags=["actors"])

    def not_found(actor_id: str) -> HTTPException:
        return HTTPException(status.HTTP_404_NOT_FOUND, detail=f"actor {actor_id} not found")

    @router.post("/actors", status_code=status.HTTP_201_CREATED, response_model=ActorOut)
    async def register(body: ActorIn, request: Request) -> ActorOut:
        actor = await service.register_actor(uow_for(correlation_id(request)), **body.model_dump())
        return ActorOut.of(actor)

    @router.get("/actors/{actor_id}", response_model=ActorOut)
    async def get(actor_id: str, request: Request) -> ActorOut:
        actor = await _repository(request).get(actor_id)
        if actor is None:
            raise not_found(actor_id)
        return ActorOut.of(actor)

    @router.get("/actors", response_model=list[ActorOut])
    async def list_actors(
        request: Request,
        district: Annotated[DistrictCode | None, Query(description="district code, e.g. IV")] = None,
        include_inactive: bool = False,
    ) -> list[ActorOut]:
        actors = await _repository(request).find(district, include_inactive)
        return [ActorOut.of(a) for a in actors]

    @router.patch("/actors/{actor_id}", response_model=ActorOut)
    async def update(actor_id: str, body: ActorPatch, request: Request) -> ActorOut:
        changes: dict[str, Any] = body.model_dump(exclude_unset=True)
        if any(v is None for v in changes.values()):
            nulls = [k for k, v in changes.items() if v is None]
            raise HTTPException(
                422,
                detail=[{"loc": ["body", k], "msg": "may not be null", "type": "value_error"} for k in nulls],
            )
        try:
            actor = await service.update_actor(uow_for(correlation_id(request)), actor_id, changes)
        except ActorNotFound:
            raise not_found(actor_id) from None
        return ActorOut.of(actor)

    @router.delete("/actors/{actor_id}", response_model=ActorOut)
    async def deactivate(actor_id: str, request: Request) -> ActorOut:
        """Deactivates the actor: it stays on record but is no longer invited."""
        try:
            actor = await service.deactivate_actor(uow_for(correlation_id(request)), actor_id)
        except ActorNotFound:
            raise not_found(actor_id) from None
        return ActorOut.of(actor)

    @router.get("/districts", response_model=Catalogue, tags=["districts"])
    async def districts() -> Catalogue:
        return load_catalogue()

    return router


def _repository(request: Request) -> MongoActorRepository:
    return MongoActorRepository(request.app.state.runtime.db)
