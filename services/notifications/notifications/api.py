"""HTTP API of the notifications service: what was sent for a conference (no personal data)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request
from pydantic import BaseModel

from .domain import DeliveryStatus
from .repository import MongoDeliveryRepository


class DeliveryOut(BaseModel):
    id: str
    kind: str
    invitation_id: str
    conference_id: str
    actor_id: str
    status: DeliveryStatus
    message_id: str | None
    reason: str | None


def build_router() -> APIRouter:
    router = APIRouter(tags=["deliveries"])

    @router.get("/deliveries", response_model=list[DeliveryOut])
    async def deliveries(request: Request, conference_id: Annotated[str, Query(min_length=1)]) -> list[DeliveryOut]:
        found = await MongoDeliveryRepository(request.app.state.runtime.db).for_conference(conference_id)
        return [
            DeliveryOut(
                id=d.id,
                kind=d.kind,
                invitation_id=d.invitation_id,
                conference_id=d.conference_id,
                actor_id=d.actor_id,
                status=d.status,
                message_id=d.message_id,
                reason=d.reason,
            )
            for d in found
        ]

    return router
