"""Actors: the domain and the service layer, with a fake unit of work (no I/O)."""

from __future__ import annotations

from types import TracebackType
from typing import Any, Self

import pytest

from actors import service
from actors.domain import Actor, ActorNotFound
from quartier_shared.events import ActorDeactivated, ActorRegistered, ActorUpdated, Event


class FakeActorRepository:
    def __init__(self) -> None:
        self.stored: dict[str, Actor] = {}

    async def add(self, actor: Actor) -> None:
        assert actor.id not in self.stored
        self.stored[actor.id] = actor

    async def get(self, actor_id: str) -> Actor | None:
        return self.stored.get(actor_id)

    async def save(self, actor: Actor) -> None:
        self.stored[actor.id] = actor


class FakeUnitOfWork:
    def __init__(self) -> None:
        self.actors = FakeActorRepository()
        self.published: list[Event] = []
        self._pending: list[Event] = []
        self.commits = 0

    async def __aenter__(self) -> Self:
        self._pending = []
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._pending = []  # uncommitted events vanish with the transaction

    def record(self, event: Event) -> object:
        self._pending.append(event)
        return event

    async def commit(self) -> None:
        self.published += self._pending
        self._pending = []
        self.commits += 1


FIELDS: dict[str, Any] = {
    "name": "Kinder- und Familienbüro Steele",
    "kind": "public_agency",
    "districts": ["VII", "VII", "VIII"],
    "email": "kfb-steele@example.org",
    "language": "de",
    "consent_to_notifications": True,
}


async def test_registering_stores_the_actor_and_records_one_event() -> None:
    uow = FakeUnitOfWork()
    actor = await service.register_actor(uow, **FIELDS)
    assert uow.actors.stored[actor.id] == actor
    assert actor.districts == ("VII", "VIII")  # duplicates dropped, order kept
    [event] = uow.published
    assert isinstance(event, ActorRegistered)
    assert event.actor_id == actor.id and event.revision == 1 and event.districts == ["VII", "VIII"]


async def test_an_update_bumps_the_revision_and_a_no_op_records_nothing() -> None:
    uow = FakeUnitOfWork()
    actor = await service.register_actor(uow, **FIELDS)
    updated = await service.update_actor(uow, actor.id, {"language": "en"})
    assert updated.revision == 2 and updated.language == "en"
    assert isinstance(uow.published[-1], ActorUpdated)
    same = await service.update_actor(uow, actor.id, {"language": "en"})
    assert same.revision == 2
    assert len(uow.published) == 2


async def test_deactivating_twice_records_one_event() -> None:
    uow = FakeUnitOfWork()
    actor = await service.register_actor(uow, **FIELDS)
    first = await service.deactivate_actor(uow, actor.id)
    second = await service.deactivate_actor(uow, actor.id)
    assert not first.active and second == first
    assert [type(e) for e in uow.published] == [ActorRegistered, ActorDeactivated]


async def test_unknown_actor() -> None:
    with pytest.raises(ActorNotFound):
        await service.update_actor(FakeUnitOfWork(), "missing", {"name": "x"})
    with pytest.raises(ActorNotFound):
        await service.deactivate_actor(FakeUnitOfWork(), "missing")


def test_only_editable_fields_change() -> None:
    actor, _ = Actor.register(**FIELDS)
    with pytest.raises(ValueError, match="not editable"):
        actor.update({"revision": 7})
