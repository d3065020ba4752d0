from __future__ import annotations

from collections.abc import Callable

from quartier_shared.events import EventContext
from quartier_shared.mongo import MongoUnitOfWork

from .repository import MongoConferenceRepository, MongoInvitationRepository, MongoRosterRepository


class ConferencesUnitOfWork(MongoUnitOfWork):
    conferences: MongoConferenceRepository
    invitations: MongoInvitationRepository
    roster: MongoRosterRepository

    def bind(self) -> None:
        self.conferences = MongoConferenceRepository(self.db, self.session)
        self.invitations = MongoInvitationRepository(self.db, self.session)
        self.roster = MongoRosterRepository(self.db, self.session)


UnitOfWorkFactory = Callable[[EventContext], ConferencesUnitOfWork]
