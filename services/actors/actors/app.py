"""Wiring of the actors service: the one place where its parts are put together."""

from __future__ import annotations

from fastapi import FastAPI

from quartier_shared.events import ActorDeactivated, ActorRegistered, ActorUpdated, CompetenceTeamChanged
from quartier_shared.runtime import Runtime, create_app

from .api import build_router
from .repository import create_indexes
from .settings import Settings
from .unit_of_work import MongoActorsUnitOfWork, UnitOfWorkFactory


def build(settings: Settings | None = None) -> FastAPI:
    runtime = Runtime(settings or Settings(), create_indexes)
    uow_factory: UnitOfWorkFactory = runtime.unit_of_work(MongoActorsUnitOfWork)
    return create_app(
        runtime,
        "Registry of the actors and the competence team of each district",
        routers=[build_router(uow_factory)],
        publishes=[ActorRegistered, ActorUpdated, ActorDeactivated, CompetenceTeamChanged],
    )
