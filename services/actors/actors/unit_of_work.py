from __future__ import annotations

from types import TracebackType
from typing import Protocol, Self

from quartier_shared.events import Event
from quartier_shared.mongo import MongoUnitOfWork

from .repository import ActorRepository, MongoActorRepository


class UnitOfWork(Protocol):
    """What the service layer needs: the real one is Mongo's, the unit tests' is a fake."""

    @property
    def actors(self) -> ActorRepository: ...

    async def __aenter__(self) -> Self: ...
    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None: ...
    def record(self, event: Event) -> object: ...
    async def commit(self) -> None: ...


class MongoActorsUnitOfWork(MongoUnitOfWork):
    actors: MongoActorRepository

    def bind(self) -> None:
        self.actors = MongoActorRepository(self.db, self.session)
