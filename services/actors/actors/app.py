"""Wiring of the actors service: the one place where its parts are put together."""

from __future__ import annotations

from functools import partial

from fastapi import FastAPI

from quartier_shared.events import (
    ActorDeactivated,
    ActorErased,
    ActorErasureConfirmed,
    ActorRegistered,
    ActorUpdated,
    CompetenceTeamChanged,
    ConsentWithdrawn,
    ContactChanged,
    EventContext,
    UnsubscribeRequested,
)
from quartier_shared.retention import run_daily
from quartier_shared.runtime import Runtime, create_app

from . import csv_rows, handlers
from .api import build_router
from .import_api import IMPORT_PATH, build_import_router
from .privacy_api import build_privacy_router
from .repository import create_indexes
from .retention import retention_job
from .settings import Settings
from .unit_of_work import MongoActorsUnitOfWork, UnitOfWorkFactory


def build(settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings()
    runtime = Runtime(settings, create_indexes)
    uow_factory: UnitOfWorkFactory = runtime.unit_of_work(MongoActorsUnitOfWork)
    confirmed = partial(handlers.confirm_erasure, uow_factory=uow_factory)
    unsubscribed = partial(handlers.withdraw_consent_by_link, uow_factory=uow_factory)
    runtime.consume(group_id="actors", handlers={ActorErasureConfirmed: confirmed, UnsubscribeRequested: unsubscribed})
    retention = retention_job(runtime.db, settings.audit_retention_months)
    runtime.run_in_background("retention", partial(run_daily, retention))

    async def upgrade() -> None:
        # Once MongoDB is up; idempotent, so a start that fails half-way finishes it next time.
        context = EventContext(settings.service_name, "actor-events-v2")
        await handlers.publish_in_current_form(context, uow_factory=uow_factory)

    runtime.run_in_background("actor-events-v2", upgrade)
    app = create_app(
        runtime,
        "Registry of the actors and the competence team of each district",
        # the import's and export's paths first: /actors/export.csv is not an actor's id
        routers=[
            build_import_router(uow_factory, settings.consent_wording_version),
            build_router(uow_factory, settings.consent_wording_version),
            build_privacy_router(uow_factory),
        ],
        publishes=[
            ActorRegistered,
            ActorUpdated,
            ActorDeactivated,
            ActorErased,
            ConsentWithdrawn,
            ContactChanged,
            CompetenceTeamChanged,
        ],
        larger_bodies={IMPORT_PATH: csv_rows.MAX_BYTES},
    )
    app.state.retention = retention  # tests run it with a clock of their own
    return app
