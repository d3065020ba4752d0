"""What every service's HTTP side shares: health, correlation ids, and clear errors."""

from __future__ import annotations

import asyncio
import json
import re
import uuid
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any

from fastapi import APIRouter, FastAPI, HTTPException, Request, Response
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pymongo.errors import PyMongoError
from starlette.middleware.trustedhost import TrustedHostMiddleware
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from .auth import subject_of
from .events import EventContext
from .logging import bind_contextvars, clear_contextvars, get_logger
from .mongo import is_unavailable

log = get_logger(__name__)

CORRELATION_HEADER = "X-Correlation-ID"
# A caller's correlation id is taken only as a short token of safe characters; else a fresh one.
_CORRELATION_ID = re.compile(r"[A-Za-z0-9._-]{1,64}")
MAX_BODY_BYTES = 64 * 1024  # larger request bodies answer 413 before anything parses them
# What a 422 echoes of the input: so many errors, each input and message cut to so many characters.
MAX_ERRORS = 10
MAX_ECHO_CHARS = 256

Check = Callable[[], Awaitable[bool]]


def health_router(required: Mapping[str, Check], reported: Mapping[str, Check] | None = None) -> APIRouter:
    """Liveness, readiness and the details behind them.

    - ``GET /health/live``: the process answers (200, always).
    - ``GET /health/ready``: the service can serve its API: 200 when every ``required`` check
      passes, else 503. ``checks`` names every check, ``reported`` ones too (Kafka): they are
      shown but never make the service unready, because the outbox keeps the API useful while
      the broker is away; a health-aware proxy would otherwise take every API offline in a
      broker outage.
    - ``GET /health``: the same checks and status code, with ``status`` ``degraded`` when only a
      reported check fails, and ``required`` naming the checks that decide readiness.
    The answers hold check names and ok/down only: nothing about hosts, users or errors."""
    optional = dict(reported or {})
    router = APIRouter(prefix="/health", tags=["health"])

    async def results() -> tuple[bool, bool, dict[str, str]]:
        checks = {**required, **optional}
        # Concurrently: a broker that does not answer costs its timeout once, not on top of MongoDB's.
        passed = dict(zip(checks, await asyncio.gather(*(_safe(check) for check in checks.values())), strict=True))
        ready = all(passed[name] for name in required)
        return ready, all(passed.values()), {name: "ok" if ok else "down" for name, ok in passed.items()}

    @router.get("/live")
    async def live() -> dict[str, str]:
        return {"status": "ok"}

    @router.get("/ready")
    async def ready() -> JSONResponse:
        ok, _, checks = await results()
        return JSONResponse({"status": "ok" if ok else "unavailable", "checks": checks}, status_code=200 if ok else 503)

    @router.get("")
    async def details() -> JSONResponse:
        ok, complete, checks = await results()
        status = "ok" if complete else "degraded" if ok else "unavailable"
        return JSONResponse(
            {"status": status, "ready": ok, "required": sorted(required), "checks": checks},
            status_code=200 if ok else 503,
        )

    return router


async def _safe(check: Check) -> bool:
    try:
        return await check()
    except Exception:
        return False


def accepted_correlation_id(value: str | None) -> str:
    """The caller's correlation id if it is a short token of safe characters, else a fresh one."""
    if value and _CORRELATION_ID.fullmatch(value):
        return value
    return str(uuid.uuid4())


class BodyLimit:
    """Refuses a request body over ``max_bytes`` with 413 before anything parses it: at once by
    its Content-Length, and while it is read when it comes without one (chunked). ``larger``
    names the few paths (a file upload) that may take more, and how much."""

    def __init__(self, app: ASGIApp, max_bytes: int = MAX_BODY_BYTES, larger: Mapping[str, int] | None = None) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.larger = dict(larger or {})

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.larger.get(scope.get("path", ""), self.max_bytes)
        length = dict(scope["headers"]).get(b"content-length")
        if length is not None and (not length.isdigit() or int(length) > limit):
            response = JSONResponse({"detail": _too_large(limit)}, status_code=413)
            await response(scope, receive, send)
            return
        received = 0

        async def limited() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise HTTPException(413, detail=_too_large(limit))
            return message

        await self.app(scope, limited, send)


def _too_large(limit: int) -> str:
    return f"The request body is larger than {limit // 1024} KiB."


def _cut(text: str) -> str:
    return text if len(text) <= MAX_ECHO_CHARS else text[:MAX_ECHO_CHARS] + "…"


def trimmed_errors(errors: Any) -> list[dict[str, Any]]:
    """Validation errors as FastAPI answers them, but echoing at most a few KiB of the input."""
    kept: list[dict[str, Any]] = []
    for error in list(errors)[:MAX_ERRORS]:
        error = dict(error)
        error["loc"] = [_cut(part) if isinstance(part, str) else part for part in error.get("loc", ())]
        error["msg"] = _cut(str(error.get("msg", "")))
        for key in ("input", "ctx"):
            if key in error:
                encoded = jsonable_encoder(error[key])
                text = json.dumps(encoded, ensure_ascii=False, default=str)
                error[key] = encoded if len(text) <= MAX_ECHO_CHARS else _cut(text)
        kept.append(error)
    return kept


def install_http_basics(
    app: FastAPI,
    allowed_hosts: Sequence[str] = ("localhost", "127.0.0.1"),
    larger_bodies: Mapping[str, int] | None = None,
) -> None:
    """Correlation id per request (taken from the caller if it is a safe token, or made), bodies
    bounded (``larger_bodies``: path -> bytes, for uploads), 422s that echo little, and no stack
    traces to users. Requests naming a host not in ``allowed_hosts`` get 400, so a page on
    another site cannot reach the API by DNS rebinding."""
    app.add_middleware(BodyLimit, larger=larger_bodies)
    app.add_middleware(TrustedHostMiddleware, allowed_hosts=list(allowed_hosts))

    @app.middleware("http")
    async def correlation(request: Request, call_next: Callable[[Request], Awaitable[Response]]) -> Response:
        correlation_id = accepted_correlation_id(request.headers.get(CORRELATION_HEADER))
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

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        return JSONResponse({"detail": trimmed_errors(exc.errors())}, status_code=422)

    @app.exception_handler(Exception)
    async def unexpected(request: Request, exc: Exception) -> JSONResponse:
        # This answer is made outside the middleware, so it sets the correlation id itself.
        log.exception("unexpected_error", path=request.url.path)
        return JSONResponse(
            {"detail": "Internal error; it has been logged."},
            status_code=500,
            headers={CORRELATION_HEADER: correlation_id(request)},
        )


def no_store(response: Response) -> None:
    """A router dependency for answers that hold personal data: no cache may keep them."""
    response.headers["Cache-Control"] = "no-store"


def correlation_id(request: Request) -> str:
    return str(getattr(request.state, "correlation_id", None) or uuid.uuid4())


def event_context(request: Request) -> EventContext:
    """The context of the events this request causes: this service as their producer, the
    request's correlation id, and the caller's subject as ``initiated_by``."""
    return EventContext(
        request.app.state.runtime.settings.service_name, correlation_id(request), initiated_by=subject_of(request)
    )
