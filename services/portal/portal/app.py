"""Wiring of the portal: one FastAPI app of pages over the services' APIs. It reads no database
and joins no broker; it needs the services' URLs, the identity provider and a session key
(``settings.py``)."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from pathlib import Path

from fastapi import APIRouter, FastAPI
from fastapi.staticfiles import StaticFiles

from quartier_shared.http import install_http_basics
from quartier_shared.web import install

from .actors_pages import build_actors_router
from .conferences_pages import build_conferences_router
from .dashboard import build_dashboard_router
from .import_page import IMPORT_PATH, MAX_FORM_BYTES, build_import_router
from .operations_page import build_operations_router
from .settings import Settings
from .signin import build_signin_router
from .start import build_start_router
from .web import Portal, install_error_pages


def build(settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings()
    portal = Portal(settings)

    @contextlib.asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        try:
            yield
        finally:
            await portal.close()

    # no /docs: the portal is pages, not an API
    app = FastAPI(title="Quartier portal", lifespan=lifespan, docs_url=None, redoc_url=None, openapi_url=None)
    install_http_basics(app, settings.allowed_host_list, {IMPORT_PATH: MAX_FORM_BYTES})
    install(app)
    install_error_pages(app, portal)
    # the portal's one script (the conference page's live statuses); the shared files are at /static
    app.mount("/portal-static", StaticFiles(directory=Path(__file__).parent / "static"), name="portal-static")
    app.include_router(_health())
    for router in (
        build_signin_router(portal),
        build_start_router(portal),
        build_actors_router(portal),
        build_import_router(portal),
        build_conferences_router(portal),
        build_operations_router(portal),
        build_dashboard_router(portal),
    ):
        app.include_router(router)
    app.state.portal = portal
    return app


def _health() -> APIRouter:
    router = APIRouter(prefix="/health", tags=["health"])

    @router.get("")
    @router.get("/live")
    @router.get("/ready")  # the portal depends on nothing to serve its pages; each page says what is down
    async def live() -> dict[str, str]:
        return {"status": "ok"}

    return router
