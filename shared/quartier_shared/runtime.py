"""One service process: MongoDB, the outbox relay, Kafka consumers and the HTTP API together.

Start-up order: logging, MongoDB (indexes), HTTP; Kafka connects in the background and keeps
trying, so the API accepts changes while the broker is away (the outbox holds their events).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import sys
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Mapping, Sequence
from typing import Any, TypeVar

import uvicorn
from fastapi import APIRouter, FastAPI
from pymongo.asynchronous.database import AsyncDatabase

from . import api_docs
from .asyncapi import asyncapi_router, declare_published, document
from .consumer import BatchHandler, EventConsumer, Handler
from .events import Event, EventContext
from .http import health_router, install_http_basics
from .kafka import KafkaPublisher, ensure_topics, kafka_security, make_broker
from .logging import configure_logging, get_logger
from .metrics import CONSUMER_LAG, KAFKA_CONNECTED, OUTBOX_BACKLOG, metrics_router
from .mongo import Document, MongoUnitOfWork, make_client
from .operations import operations_router
from .outbox import Outbox, OutboxRelay
from .retry import Retry
from .settings import ServiceSettings

log = get_logger(__name__)
CreateIndexes = Callable[[AsyncDatabase[Document]], Awaitable[None]]
UoW = TypeVar("UoW", bound=MongoUnitOfWork)
# Dependencies at start-up: wait for them as long as it takes, a little longer each time.
_until_up = Retry(base=0.2, cap=5.0)
# How long stop() waits for its cancelled workers (compose gives the whole stop 20 s).
STOP_WORKERS_SECONDS = 10.0


class Runtime:
    def __init__(self, settings: ServiceSettings, create_indexes: CreateIndexes) -> None:
        """``create_indexes(db)`` prepares the service's collections at every start."""
        self.settings = settings
        self.create_indexes = create_indexes
        self.client = make_client(settings.mongodb_uri, settings.mongodb_timeout_ms)
        self.db = self.client[settings.mongodb_database]
        self.outbox = Outbox(self.db, owner=f"{settings.service_name}-{uuid.uuid4().hex[:12]}")
        self.kafka_security = kafka_security(settings)
        self.publisher = KafkaPublisher(settings.kafka_bootstrap_servers, security=self.kafka_security)
        self.broker = make_broker(settings.kafka_bootstrap_servers, security=self.kafka_security)
        self.relay = OutboxRelay(self.outbox, self.publisher)
        self.kafka_connected = asyncio.Event()
        self._tasks: list[asyncio.Task[Any]] = []
        self._closers: list[Callable[[], Awaitable[None]]] = []
        self._checks: list[Callable[[], None]] = []
        self._workers: list[tuple[str, Callable[[], Coroutine[Any, Any, None]]]] = []
        self.consumers: list[EventConsumer] = []

    def on_start(self, check: Callable[[], None]) -> None:
        """Check something of the service's own when it starts, before anything connects (a key it
        needs): an error it raises stops the start, and says why."""
        self._checks.append(check)

    def on_stop(self, closer: Callable[[], Awaitable[None]]) -> None:
        """Close something of the service's own (an SMTP pool) when the process stops."""
        self._closers.append(closer)

    def run_in_background(self, name: str, work: Callable[[], Coroutine[Any, Any, None]]) -> None:
        """Run ``work()`` (a loop of the service's own, such as a reminder worker) as a task from
        when MongoDB is ready until the process stops, as the outbox relay runs."""
        self._workers.append((name, work))

    def consume(
        self,
        *,
        group_id: str,
        handlers: Mapping[type[Event], Handler] | None = None,
        batch_handlers: Mapping[type[Event], BatchHandler] | None = None,
    ) -> EventConsumer:
        """Subscribe this service's consumer group (before the app starts)."""
        consumer = EventConsumer(
            settings=self.settings,
            broker=self.broker,
            publisher=self.publisher,
            group_id=group_id,
            handlers=handlers,
            batch_handlers=batch_handlers,
            security=self.kafka_security,
        )
        self.consumers.append(consumer)
        return consumer

    async def refresh_metrics(self) -> None:
        kafka_up = await self.kafka_ready()
        with contextlib.suppress(Exception):  # a scrape must answer even while MongoDB is away
            async with asyncio.timeout(2):
                OUTBOX_BACKLOG.set(await self.outbox.pending_count())
        # Kafka away: the lag gauges keep their last values (quartier_kafka_connected says why),
        # and the scrape does not wait for the lag's own client to give up.
        for consumer in self.consumers if kafka_up else ():
            with contextlib.suppress(Exception):
                for topic, lag in (await consumer.lag()).items():
                    CONSUMER_LAG.labels(topic).set(lag)

    def unit_of_work(self, cls: type[UoW]) -> Callable[[EventContext], UoW]:
        """The service's unit-of-work factory: one transaction on this database per call."""
        return lambda context: cls(self.client, self.db, self.outbox, context)

    async def start(self) -> None:
        for check in self._checks:
            try:
                check()
            except Exception as exc:
                # One plain line before the server's traceback: what is wrong and what to do.
                log.error("startup_refused", reason=str(exc))
                raise
        await _until_up.run(self._prepare_db, event="waiting_for_dependency", dependency="mongodb")
        self._tasks.append(asyncio.create_task(self._connect_kafka(), name="kafka-connect"))
        self._tasks.extend(asyncio.create_task(work(), name=name) for name, work in self._workers)

    async def _prepare_db(self) -> None:
        await self.client.admin.command("ping")
        await self.outbox.create_indexes()
        await self.create_indexes(self.db)

    async def _connect_kafka(self) -> None:
        bootstrap = self.settings.kafka_bootstrap_servers
        security = self.kafka_security
        kept_days = self.settings.dead_letter_retention_days

        def topics() -> Awaitable[None]:
            return ensure_topics(bootstrap, security=security, dead_letter_retention_days=kept_days)

        for step in (topics, self.publisher.start, self.broker.start):
            await _until_up.run(step, event="waiting_for_dependency", dependency="kafka")
        self.kafka_connected.set()
        log.info("kafka_connected")
        await self.relay.run()

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        if self._tasks:
            # Bounded: a worker that lost its cancellation (see wakeup.py) must not hold the stop
            # forever; it is named, and the process ends with the rest.
            ended, running = await asyncio.wait(self._tasks, timeout=STOP_WORKERS_SECONDS)
            for task in ended:  # a worker that had failed: its error was logged where it failed
                if not task.cancelled():
                    task.exception()
            if running:
                log.error("workers_did_not_stop", workers=sorted(t.get_name() for t in running))
        with contextlib.suppress(Exception):
            await self.broker.stop()
        for closer in self._closers:
            with contextlib.suppress(Exception):
                await closer()
        await self.publisher.stop()
        await self.client.close()

    async def mongo_ready(self) -> bool:
        async with asyncio.timeout(2):
            await self.client.admin.command("ping")
        return True

    async def kafka_ready(self) -> bool:
        """Whether Kafka answers; also the ``quartier_kafka_connected`` gauge. Reported by
        /health, never a condition of readiness (see ``http.health_router``)."""
        # The broker is consumer-only (the publisher is the one producer), so it has no client to
        # ping; the publisher's metadata request answers for Kafka.
        try:
            async with asyncio.timeout(2):
                up = self.kafka_connected.is_set() and await self.publisher.ping()
        except Exception:
            up = False
        KAFKA_CONNECTED.set(1 if up else 0)
        return up


def create_app(
    runtime: Runtime,
    summary: str,
    *,
    routers: Sequence[APIRouter],
    publishes: Sequence[type[Event]] = (),
    larger_bodies: Mapping[str, int] | None = None,
) -> FastAPI:
    """The service's HTTP app, with health, metrics and its AsyncAPI document (at /asyncapi).
    ``publishes`` names the events the service produces; the consumers registered before this
    call are in the document too, and both lists in its description after ``summary``.
    ``larger_bodies``: paths that take bodies over the usual limit (uploads), and their limit."""
    title = f"Quartier {runtime.settings.service_name}"
    consumes = sorted({kind.__name__ for consumer in runtime.consumers for kind in consumer.event_types})
    description = f"{summary}. Publishes {_listed([kind.__name__ for kind in publishes])}" + (
        f"; consumes {_listed(consumes)}." if consumes else "."
    )

    @contextlib.asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        await runtime.start()
        log.info("service_started", port=runtime.settings.port)
        try:
            yield
        finally:
            await runtime.stop()
            log.info("service_stopped")

    # /docs from our own files (api_docs): FastAPI's pages load Swagger UI and ReDoc from a CDN.
    app = FastAPI(
        title=title, description=description, version="0.1.0", lifespan=lifespan, docs_url=None, redoc_url=None
    )
    install_http_basics(app, runtime.settings.allowed_host_list, larger_bodies)
    api_docs.install(app)
    # Ready = the API can be served (MongoDB); Kafka's state is reported beside it (see health_router).
    app.include_router(health_router({"mongodb": runtime.mongo_ready}, reported={"kafka": runtime.kafka_ready}))
    app.include_router(metrics_router(runtime.refresh_metrics))
    declare_published(runtime.broker, publishes)
    app.state.asyncapi = document(runtime.broker, title=title, description=description)
    app.include_router(asyncapi_router(app.state.asyncapi))
    for router in routers:
        app.include_router(router)
    app.include_router(operations_router(runtime))
    app.state.runtime = runtime
    return app


def _listed(names: Sequence[str]) -> str:
    return ", ".join(names[:-1]) + f" and {names[-1]}" if len(names) > 1 else "".join(names)


def main(build: Callable[[Any], FastAPI], settings_class: type[ServiceSettings]) -> None:
    """A service's ``python -m <service>``: serve it, or print its AsyncAPI document when called
    as ``python -m <service> asyncapi`` (with the broker address of the compose deployment)."""
    if sys.argv[1:] == ["asyncapi"]:
        document = build(settings_class(kafka_bootstrap_servers="kafka:9092")).state.asyncapi
        # Sorted: FastStream's order of channels varies from run to run; the committed copy must not.
        print(json.dumps(document, indent=2, sort_keys=True))
        return
    settings = settings_class()
    serve(build(settings), settings)


def serve(app: FastAPI, settings: ServiceSettings) -> None:
    configure_logging(settings.service_name, settings.log_level)
    uvicorn.run(app, host=settings.host, port=settings.port, log_config=None, access_log=False)
