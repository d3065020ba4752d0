"""What every service's HTTP side shares: health, correlation ids, and clear errors."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable

from fastapi import APIRouter, FastAPI, Request, Response
from fastapi.responses import JSONResponse
from pymongo.errors import PyMongoError

from .auth import subject_of
from .events import EventContext
from .logging import bind_contextvars, clear_contextvars, get_logger
from .mongo import is_unavailable

log = get_logger(__name__)

CORRELATION_HEADER = "X-Correlation-ID"

Check = Callable[[], Awaitable[bool]]


def health_router(checks: dict[str, Check]) -> APIRouter:
    router = APIRouter(prefix="/health", tags=["health"])

    @router.get("/live")
    async def live() -> dict[str, str]:
        return {"status": "ok"}

    @router.get("/ready")
    async def ready() -> JSONResponse:
        results = {name: await _safe(check) for name, check in checks.items()}
        ok = all(results.values())
        return JSONResponse(
            {"status": "ok" if ok else "unavailable", "checks": {k: "ok" if v else "down" for k, v in results.items()}},
            status_code=200 if ok else 503,
        )

    return router


async def _safe(check: Check) -> bool:
    try:
        return await check()
    except Exception:
        return False


def install_http_basics(app: FastAPI) -> None:
    """Correlation id per request (taken from the caller or made), and no stack traces to users."""

    @app.middleware("http")
    async def correlation(request: Request, call_next: Callable[[Request], Awaitable[Response]]) -> Response:
        correlation_id = request.headers.get(CORRELATION_HEADER) or str(uuid.uuid4())
        clear_contextvars()
        bind_contextvars(correlation_id=correlation_id)
        request.state.correlation_id = correlation_id
        response = await call_next(request)
        response.headers[CORRELATION_HEADER] = correlation_id
        return response

    @app.exception_handler(PyMongoError)
    async def database_error(request: Request, exc: PyMongoError) -> JSONResponse:
        if is_unavailable(exc):
            log.warning("database_unavailable", error=type(exc).__name__, path=request.url.path)
            return JSONResponse(
                {"detail": "The database is not reachable right now. Nothing was changed; please try again shortly."},
                status_code=503,
                headers={"Retry-After": "5"},
            )
        log.error("database_error", error=type(exc).__name__, path=request.url.path)
        return JSONResponse({"detail": "The request could not be stored. Nothing was changed."}, status_code=500)

    @app.exception_handler(Exception)
    async def unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unexpected_error", path=request.url.path)
        return JSONResponse({"detail": "Internal error; it has been logged."}, status_code=500)


def correlation_id(request: Request) -> str:
    return str(getattr(request.state, "correlation_id", None) or uuid.uuid4())


def event_context(request: Request) -> EventContext:
    """The context of the events this request causes: this service as their producer, the
    request's correlation id, and the caller's subject as ``initiated_by``."""
    return EventContext(
        request.app.state.runtime.settings.service_name, correlation_id(request), initiated_by=subject_of(request)
    )
