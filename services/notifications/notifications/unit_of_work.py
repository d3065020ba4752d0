from __future__ import annotations

from collections.abc import Callable

from quartier_shared.events import EventContext
from quartier_shared.mongo import MongoUnitOfWork

from .repository import MongoContactRepository, MongoDeliveryRepository


class NotificationsUnitOfWork(MongoUnitOfWork):
    contacts: MongoContactRepository
    deliveries: MongoDeliveryRepository

    def bind(self) -> None:
        self.contacts = MongoContactRepository(self.db, self.session)
        self.deliveries = MongoDeliveryRepository(self.db, self.session)


UnitOfWorkFactory = Callable[[EventContext], NotificationsUnitOfWork]
