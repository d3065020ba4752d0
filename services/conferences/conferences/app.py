"""Wiring of the conferences service: the one place where its parts are put together."""

from __future__ import annotations

from functools import partial

from fastapi import FastAPI

from quartier_shared import web
from quartier_shared.catalogue import load_catalogue
from quartier_shared.events import (
    ActorEvent,
    CompetenceTeamChanged,
    ConferenceDrafted,
    ConferenceScheduled,
    InvitationAnswered,
    InvitationIssued,
    InvitationOutcome,
)
from quartier_shared.runtime import Runtime, create_app

from . import handlers
from .api import build_router
from .pages import build_pages_router
from .repository import create_indexes
from .settings import Settings
from .unit_of_work import MongoConferencesUnitOfWork, UnitOfWorkFactory


def build(settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings()
    runtime = Runtime(settings, create_indexes)
    uow_factory: UnitOfWorkFactory = runtime.unit_of_work(MongoConferencesUnitOfWork)
    roster = partial(handlers.update_roster, uow_factory=uow_factory)
    team = partial(handlers.update_team, uow_factory=uow_factory)
    outcomes = partial(handlers.record_outcomes, uow_factory=uow_factory)
    fan_out = partial(handlers.invite_district, uow_factory=uow_factory, batch_size=settings.fanout_batch_size)
    runtime.consume(
        group_id="conferences",
        handlers={ActorEvent: roster, ConferenceScheduled: fan_out, CompetenceTeamChanged: team},
        batch_handlers={InvitationOutcome: outcomes},
    )
    pages = web.Pages(settings, city=load_catalogue().city, package="conferences")
    answer_page = build_pages_router(
        uow_factory, pages, verify_key=settings.link_verify_key, public_base_url=settings.public_url
    )
    app = create_app(
        runtime,
        "District integration conferences, their invitations and the answers to them",
        routers=[build_router(uow_factory), answer_page],
        publishes=[ConferenceScheduled, ConferenceDrafted, InvitationIssued, InvitationAnswered],
    )
    web.install(app)
    return app
