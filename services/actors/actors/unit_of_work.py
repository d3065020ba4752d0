"""The actors service's unit of work: one transaction holding the actor and team repositories
and the events the change raises (see ``quartier_shared.mongo``).

Handlers depend on the ``UnitOfWork`` protocol only: the service runs on ``MongoActorsUnitOfWork``,
the unit tests on a fake.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

from quartier_shared import mongo
from quartier_shared.events import EventContext

from .repository import ActorRepository, MongoActorRepository, MongoTeamRepository, TeamRepository


class UnitOfWork(mongo.UnitOfWork, Protocol):
    actors: ActorRepository
    teams: TeamRepository


class MongoActorsUnitOfWork(mongo.MongoUnitOfWork):
    actors: ActorRepository
    teams: TeamRepository

    def bind(self) -> None:
        self.actors = MongoActorRepository(self.db, self.session)
        self.teams = MongoTeamRepository(self.db, self.session)


# One unit of work per call, its events caused in this context.
UnitOfWorkFactory = Callable[[EventContext], UnitOfWork]
