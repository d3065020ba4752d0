"""Wiring of the conferences service: the one place where its parts are put together."""

from __future__ import annotations

from datetime import timedelta
from functools import partial

from fastapi import FastAPI

from quartier_shared import web
from quartier_shared.catalogue import load_catalogue
from quartier_shared.events import (
    ActorDeactivated,
    ActorErased,
    ActorErasureConfirmed,
    ActorSnapshot,
    CompetenceTeamChanged,
    ConferenceCancelled,
    ConferenceChanged,
    ConferenceDrafted,
    ConferenceScheduled,
    InvitationAnswered,
    InvitationCancelled,
    InvitationIssued,
    InvitationOutcome,
    InvitationReminded,
    InvitationUpdated,
    UnsubscribeRequested,
)
from quartier_shared.retention import run_daily
from quartier_shared.runtime import Runtime, create_app

from . import changes, handlers, reminders
from .api import build_router
from .pages import build_pages_router
from .privacy_api import build_privacy_router
from .repository import create_indexes
from .retention import retention_job
from .settings import Settings
from .unit_of_work import MongoConferencesUnitOfWork, UnitOfWorkFactory
from .unsubscribe_page import build_unsubscribe_router


def build(settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings()
    runtime = Runtime(settings, create_indexes)
    uow_factory: UnitOfWorkFactory = runtime.unit_of_work(MongoConferencesUnitOfWork)
    roster = partial(handlers.update_roster, uow_factory=uow_factory)
    erase = partial(handlers.erase_actor, uow_factory=uow_factory)
    team = partial(handlers.update_team, uow_factory=uow_factory)
    outcomes = partial(handlers.record_outcomes, uow_factory=uow_factory)
    fan_out = partial(handlers.invite_district, uow_factory=uow_factory, batch_size=settings.fanout_batch_size)
    tell = partial(changes.tell_invitations, uow_factory=uow_factory, batch_size=settings.fanout_batch_size)
    runtime.consume(
        group_id="conferences",
        handlers={
            ActorSnapshot: roster,
            ActorDeactivated: roster,
            ActorErased: erase,  # after ActorDeactivated, whose handler it replaces for erasures
            ConferenceScheduled: fan_out,
            ConferenceChanged: tell,
            ConferenceCancelled: tell,
            CompetenceTeamChanged: team,
        },
        batch_handlers={InvitationOutcome: outcomes},
    )
    firing = reminders.Firing(
        uow_factory,
        service=settings.service_name,
        owner=runtime.outbox.owner,
        lease=timedelta(seconds=settings.reminders_lease_seconds),
        batch_size=settings.fanout_batch_size,
    )
    worker = reminders.ReminderWorker(partial(reminders.fire_due, firing), settings.reminders_poll_seconds)
    runtime.run_in_background("reminders", worker.run)
    retention = retention_job(runtime.db, settings.retention_months)
    runtime.run_in_background("retention", partial(run_daily, retention))
    pages = web.Pages(settings, city=load_catalogue().city, package="conferences")
    answer_page = build_pages_router(
        uow_factory, pages, verify_key=settings.link_verify_key, public_base_url=settings.public_url
    )
    app = create_app(
        runtime,
        "District integration conferences, their invitations and the answers to them",
        routers=[
            build_router(uow_factory, reminders_before=settings.reminder_offsets, wake_reminders=worker.wake),
            answer_page,
            build_privacy_router(uow_factory),
            build_unsubscribe_router(uow_factory, pages, verify_key=settings.link_verify_key),
        ],
        publishes=[
            ConferenceScheduled,
            ConferenceDrafted,
            ConferenceChanged,
            ConferenceCancelled,
            InvitationIssued,
            InvitationUpdated,
            InvitationCancelled,
            InvitationReminded,
            InvitationAnswered,
            ActorErasureConfirmed,
            UnsubscribeRequested,
        ],
    )
    app.state.reminders = firing  # tests fire due reminders with a clock of their own
    app.state.retention = retention  # and run the retention job with one
    web.install(app)
    return app
