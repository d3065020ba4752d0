"""The conferences service's unit of work: one transaction holding its repositories and the
events the change raises (see ``quartier_shared.mongo``).

Handlers depend on the ``UnitOfWork`` protocol only: the service runs on
``MongoConferencesUnitOfWork``, the unit tests on a fake.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

from quartier_shared import mongo
from quartier_shared.events import EventContext

from .repository import (
    ConferenceRepository,
    InvitationRepository,
    MongoConferenceRepository,
    MongoInvitationRepository,
    MongoRosterRepository,
    MongoTeamRepository,
    RosterRepository,
    TeamRepository,
)


class UnitOfWork(mongo.UnitOfWork, Protocol):
    conferences: ConferenceRepository
    invitations: InvitationRepository
    roster: RosterRepository
    teams: TeamRepository


class MongoConferencesUnitOfWork(mongo.MongoUnitOfWork):
    conferences: ConferenceRepository
    invitations: InvitationRepository
    roster: RosterRepository
    teams: TeamRepository

    def bind(self) -> None:
        self.conferences = MongoConferenceRepository(self.db, self.session)
        self.invitations = MongoInvitationRepository(self.db, self.session)
        self.roster = MongoRosterRepository(self.db, self.session)
        self.teams = MongoTeamRepository(self.db, self.session)


# One unit of work per call, its events caused in this context.
UnitOfWorkFactory = Callable[[EventContext], UnitOfWork]
