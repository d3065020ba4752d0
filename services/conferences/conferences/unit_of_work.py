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


# A transaction that conflicted with another (a fan-out batch and a change writing the same
# conference, late joiners of one conference handled side by side, a second nudge) is run again,
# after a pause drawn at random so that those that conflicted do not meet again, and then sees
# what the other committed. Beyond the attempts the conflict is raised: a request answers 503,
# a consumed event is retried by the consumer.
_again = Retry(base=0.02, cap=0.5, attempts=20, transient=_conflicted, jitter=True)


async def retry_conflicts(call: Callable[[], Awaitable[T]]) -> T:
    """``call()`` (one whole unit of work), run again while it conflicts with another transaction."""
    return await _again.run(call, event="transaction_conflict_retrying")
