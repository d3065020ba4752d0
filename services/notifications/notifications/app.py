"""Wiring of the notifications service: the one place where its parts are put together."""

from __future__ import annotations

from functools import partial

from fastapi import FastAPI

from quartier_shared.events import (
    ACTORS_TOPIC,
    INVITATIONS_TOPIC,
    ActorDeactivated,
    ActorRegistered,
    ActorUpdated,
    EventContext,
    InvitationFailed,
    InvitationIssued,
    InvitationSent,
)
from quartier_shared.runtime import Runtime, create_app

from . import handlers
from .api import build_router
from .repository import MongoContactRepository, MongoDeliveryRepository, create_indexes
from .settings import Settings
from .smtp import SmtpSender
from .unit_of_work import NotificationsUnitOfWork


def build(settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings()
    runtime = Runtime(settings)
    smtp = SmtpSender(settings)

    def uow_factory(context: EventContext) -> NotificationsUnitOfWork:
        return NotificationsUnitOfWork(runtime.client, runtime.db, runtime.outbox, context)

    deps = handlers.Dependencies(
        settings=settings,
        uow_factory=uow_factory,
        contacts=MongoContactRepository(runtime.db),
        deliveries=MongoDeliveryRepository(runtime.db),
        smtp=smtp,
    )
    contact = partial(handlers.update_contact, deps=deps)
    runtime.consume(
        group_id="notifications",
        topics=[ACTORS_TOPIC, INVITATIONS_TOPIC],
        handlers={
            ActorRegistered: contact,
            ActorUpdated: contact,
            ActorDeactivated: contact,
        },
        batch_handlers={InvitationIssued: partial(handlers.send_invitations, deps=deps)},
    )

    runtime.on_stop(smtp.close)
    return create_app(
        runtime,
        title="Quartier notifications",
        description="Invitation e-mails with calendar files: consumes InvitationIssued and actor events; "
        "publishes InvitationSent and InvitationFailed.",
        routers=[build_router()],
        create_indexes=lambda: create_indexes(runtime.db),
        publishes=[InvitationSent, InvitationFailed],
    )
