"""The conferences service's unit of work: one transaction holding its repositories and the
events the change raises (see ``quartier_shared.mongo``).

Handlers depend on the ``UnitOfWork`` protocol only: the service runs on
``MongoConferencesUnitOfWork``, the unit tests on a fake.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Protocol, TypeVar

from pymongo.errors import OperationFailure

from quartier_shared import mongo
from quartier_shared.events import EventContext
from quartier_shared.retry import Retry

from .repository import (
    ConferenceRepository,
    InvitationRepository,
    MongoConferenceRepository,
    MongoInvitationRepository,
    MongoReminderRepository,
    MongoRosterRepository,
    MongoTeamRepository,
    ReminderRepository,
    RosterRepository,
    TeamRepository,
)


class UnitOfWork(mongo.UnitOfWork, Protocol):
    conferences: ConferenceRepository
    invitations: InvitationRepository
    roster: RosterRepository
    teams: TeamRepository
    reminders: ReminderRepository


class MongoConferencesUnitOfWork(mongo.MongoUnitOfWork):
    conferences: ConferenceRepository
    invitations: InvitationRepository
    roster: RosterRepository
    teams: TeamRepository
    reminders: ReminderRepository

    def bind(self) -> None:
        self.conferences = MongoConferenceRepository(self.db, self.session)
        self.invitations = MongoInvitationRepository(self.db, self.session)
        self.roster = MongoRosterRepository(self.db, self.session)
        self.teams = MongoTeamRepository(self.db, self.session)
        self.reminders = MongoReminderRepository(self.db, self.session)


# One unit of work per call, its events caused in this context.
UnitOfWorkFactory = Callable[[EventContext], UnitOfWork]


T = TypeVar("T")


def _conflicted(exc: BaseException) -> bool:
    return isinstance(exc, OperationFailure) and exc.has_error_label("TransientTransactionError")


# A request's transaction that conflicted with another (a fan-out batch writing the same
# conference, a second nudge) is run again a few times, and then sees what the other committed.
_again = Retry(base=0.02, cap=0.5, attempts=8, transient=_conflicted)


async def retry_conflicts(call: Callable[[], Awaitable[T]]) -> T:
    """``call()`` (one whole unit of work), run again while it conflicts with another transaction."""
    return await _again.run(call, event="transaction_conflict_retrying")
