"""Use cases of the actors service: each one change, stored with its event in one transaction."""

from __future__ import annotations

from typing import Any

from .domain import Actor, ActorNotFound, Language
from .unit_of_work import UnitOfWork


async def register_actor(
    uow: UnitOfWork,
    *,
    name: str,
    kind: str,
    districts: list[str],
    email: str,
    language: Language,
    consent_to_notifications: bool,
) -> Actor:
    actor, event = Actor.register(
        name=name,
        kind=kind,
        districts=districts,
        email=email,
        language=language,
        consent_to_notifications=consent_to_notifications,
    )
    async with uow:
        await uow.actors.add(actor)
        uow.record(event)
        await uow.commit()
    return actor


async def update_actor(uow: UnitOfWork, actor_id: str, changes: dict[str, Any]) -> Actor:
    async with uow:
        actor = await uow.actors.get(actor_id)
        if actor is None:
            raise ActorNotFound(actor_id)
        updated, event = actor.update(changes)
        if event is not None:
            await uow.actors.save(updated)
            uow.record(event)
            await uow.commit()
    return updated


async def deactivate_actor(uow: UnitOfWork, actor_id: str) -> Actor:
    async with uow:
        actor = await uow.actors.get(actor_id)
        if actor is None:
            raise ActorNotFound(actor_id)
        updated, event = actor.deactivate()
        if event is not None:
            await uow.actors.save(updated)
            uow.record(event)
            await uow.commit()
    return updated
