from __future__ import annotations

from typing import Protocol, Self

from quartier_shared.events import Event
from quartier_shared.mongo import MongoUnitOfWork

from .repository import ActorRepository, MongoActorRepository


class UnitOfWork(Protocol):
    actors: ActorRepository

    async def __aenter__(self) -> Self: ...
    async def __aexit__(self, *exc: object) -> None: ...
    def record(self, event: Event) -> object: ...
    async def commit(self) -> None: ...


class MongoActorsUnitOfWork(MongoUnitOfWork):
    actors: MongoActorRepository

    def bind(self) -> None:
        self.actors = MongoActorRepository(self.db, self.session)
