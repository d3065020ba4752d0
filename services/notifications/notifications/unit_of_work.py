"""The notifications service's unit of work: one transaction holding its repositories and the
events the change raises (see ``quartier_shared.mongo``), and the same repositories outside one.

Handlers and the sending workflow depend on the ``UnitOfWork`` protocol only: the service runs on
``MongoNotificationsUnitOfWork``, the unit tests on a fake. Three ways to the repositories:
- ``async with uow_factory(context) as uow:`` binds them to one transaction, with the events it
  records. Claims run in one (a document a crashed instance's transaction still locks gives a
  quick write conflict, retried, instead of a write that hangs), and so do the folds of logged
  outcomes into the deliveries, with their InvitationSent or InvitationFailed (``recording``).
- ``async with uow_factory(context).for_reading() as uow:`` for the query: no transaction, no commit.
- ``uow_factory(context).without_transaction()``, for writes too: each call is its own write. For
  what needs no atomicity and is on the fan-out's hot path: contacts, the reads of the workflow,
  and storing new deliveries, where a duplicate id means "stored before" but would abort a
  transaction; and logging outcomes (an insert each, see ``recording``). Also for the copies of
  conferences (their events come in order, one at a time) and
  the test-mail quota (an atomic increment of its own, which concurrent transactions would turn
  into write conflicts).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from quartier_shared import mongo
from quartier_shared.events import EventContext

from .repository import (
    ConferenceRepository,
    ContactRepository,
    DeliveryRepository,
    MongoConferenceRepository,
    MongoContactRepository,
    MongoDeliveryRepository,
    MongoOutcomeLog,
    MongoQuotaRepository,
    OutcomeLogRepository,
    QuotaRepository,
)


@dataclass(frozen=True)
class Repositories:
    """The repositories outside any transaction: each call is its own write."""

    contacts: ContactRepository
    deliveries: DeliveryRepository
    conferences: ConferenceRepository
    quota: QuotaRepository
    outcomes: OutcomeLogRepository


class UnitOfWork(mongo.UnitOfWork, Protocol):
    contacts: ContactRepository
    deliveries: DeliveryRepository
    outcomes: OutcomeLogRepository

    def without_transaction(self) -> Repositories:
        """The same repositories outside any transaction, used without ``async with``."""
        ...


class MongoNotificationsUnitOfWork(mongo.MongoUnitOfWork):
    contacts: ContactRepository
    deliveries: DeliveryRepository
    outcomes: OutcomeLogRepository

    def bind(self) -> None:
        self.contacts = MongoContactRepository(self.db, self.session)
        self.deliveries = MongoDeliveryRepository(self.db, self.session)
        self.outcomes = MongoOutcomeLog(self.db, self.session)

    def without_transaction(self) -> Repositories:
        return Repositories(
            contacts=MongoContactRepository(self.db),
            deliveries=MongoDeliveryRepository(self.db),
            conferences=MongoConferenceRepository(self.db),
            quota=MongoQuotaRepository(self.db),
            outcomes=MongoOutcomeLog(self.db),
        )


# One unit of work per call, its events caused in this context.
UnitOfWorkFactory = Callable[[EventContext], UnitOfWork]
