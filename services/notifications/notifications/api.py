"""HTTP API of the notifications service: what was sent for a conference (no personal data).

Who may call it (``quartier_shared.auth``): operators and coordinators; every other role gets 403.

Thin: the query's parameter is checked (a 422 names it), a handler does the work, and the answer
is the handler's result as a response model. The response model is the HTTP contract and is
declared here on purpose; it is filled from the domain objects by field name.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request, Response
from pydantic import BaseModel

from quartier_shared.auth import COORDINATOR, OPERATOR, allow, protected_router
from quartier_shared.http import event_context, no_store
from quartier_shared.pagination import PAGE, PageRequest, announce_next

from . import handlers
from .domain import DeliveryStatus
from .unit_of_work import UnitOfWorkFactory


class DeliveryOut(BaseModel):
    id: str
    kind: str  # "invitation" or "confirmation" (of an answer)
    resend: int  # invitations: 0, or the n-th resend
    invitation_id: str
    conference_id: str
    actor_id: str
    status: DeliveryStatus
    message_id: str | None
    reason: str | None


def build_router(uow_factory: UnitOfWorkFactory) -> APIRouter:
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

    return router
