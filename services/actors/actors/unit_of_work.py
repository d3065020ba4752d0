"""The actors service's unit of work: one transaction holding the actor, team and erasure
repositories, the audit log, and the events the change raises (see ``quartier_shared.mongo``).
For reading (no transaction), the audit log's entries are written on their own.

Handlers depend on the ``UnitOfWork`` protocol only: the service runs on ``MongoActorsUnitOfWork``,
the unit tests on a fake.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

from quartier_shared import mongo
from quartier_shared.events import EventContext

from .repository import (
    ActorRepository,
    AuditLog,
    ErasureRepository,
    MongoActorRepository,
    MongoAuditLog,
    MongoErasureRepository,
    MongoTeamRepository,
    TeamRepository,
)


class UnitOfWork(mongo.UnitOfWork, Protocol):
    actors: ActorRepository
    teams: TeamRepository
    erasures: ErasureRepository
    audit: AuditLog


class MongoActorsUnitOfWork(mongo.MongoUnitOfWork):
    actors: ActorRepository
    teams: TeamRepository
    erasures: ErasureRepository
    audit: AuditLog

    def bind(self) -> None:
        self.actors = MongoActorRepository(self.db, self.session)
        self.teams = MongoTeamRepository(self.db, self.session)
        self.erasures = MongoErasureRepository(self.db, self.session)
        self.audit = MongoAuditLog(self.db, self.session)


# One unit of work per call, its events caused in this context.
UnitOfWorkFactory = Callable[[EventContext], UnitOfWork]
