"""Helpers for tests: talk to Kafka directly, wait for conditions, read mails."""

from __future__ import annotations

import asyncio
import contextlib
import email
import email.policy
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from datetime import UTC, datetime
from email.message import EmailMessage
from pathlib import Path
from typing import Any, TypeVar

import httpx
from aiokafka import AIOKafkaConsumer
from aiokafka.structs import ConsumerRecord, TopicPartition
from fastapi import FastAPI

from quartier.embedded import Infrastructure
from quartier_shared.events import (
    EVENT_TYPES,
    TOPIC_PARTITIONS,
    ActorRegistered,
    ActorSnapshot,
    ContactChanged,
    Envelope,
    Event,
    kafka_headers,
    wrap,
)
from quartier_shared.kafka import KafkaPublisher, OutgoingMessage
from quartier_shared.outbox import pending_events
from quartier_shared.settings import ServiceSettings

T = TypeVar("T")


async def eventually(check: Callable[[], Awaitable[T | None]], timeout: float = 30.0, interval: float = 0.2) -> T:
    """Poll ``check`` until it returns something truthy; fail with the last value after ``timeout``."""
    deadline = time.monotonic() + timeout
    last: T | None = None
    while time.monotonic() < deadline:
        last = await check()
        if last:
            return last
        await asyncio.sleep(interval)
    raise AssertionError(f"condition not met within {timeout}s (last value: {last!r})")


def envelope_of(event: Event, correlation_id: str = "test-correlation", event_id: str | None = None) -> Envelope:
    return wrap(event, producer="tests", correlation_id=correlation_id, event_id=event_id)


async def publish(bootstrap: str, envelopes: list[Envelope]) -> None:
    """Each envelope on its topic, keyed by its aggregate, as a service's relay publishes it.

    One at a time: each is on the broker before the next is sent, so a test's order is the order
    the broker holds, across topics too (an invitation before its contact, say)."""
    async with KafkaPublisher(bootstrap) as publisher:
        for e in envelopes:
            topic = EVENT_TYPES[e.event_type].topic
            await publisher.publish(
                [OutgoingMessage(topic, e.aggregate_id.encode(), e.model_dump_json().encode(), kafka_headers(e))]
            )


async def publish_at_once(bootstrap: str, envelopes: list[Envelope]) -> None:
    """Like ``publish``, in one go: they reach the consumer together, in the same batches (the
    order of each key holds, as it does on one partition)."""
    async with KafkaPublisher(bootstrap) as publisher:
        await publisher.publish(
            [
                OutgoingMessage(
                    EVENT_TYPES[e.event_type].topic,
                    e.aggregate_id.encode(),
                    e.model_dump_json().encode(),
                    kafka_headers(e),
                )
                for e in envelopes
            ]
        )


async def publish_raw(
    bootstrap: str, topic: str, value: bytes | None, key: bytes | None = None, headers: dict[str, str] | None = None
) -> None:
    """Any bytes (garbage, a wrong shape, a hand-made dead letter; None: a tombstone) to ``topic``."""
    message_headers = [(k, v.encode()) for k, v in (headers or {}).items()]
    async with KafkaPublisher(bootstrap) as publisher:
        await publisher.publish([OutgoingMessage(topic, key, value, message_headers)])


async def read_topic(
    bootstrap: str, topic: str, *, until: Callable[[list[ConsumerRecord[bytes, bytes]]], bool], timeout: float = 30.0
) -> list[ConsumerRecord[bytes, bytes]]:
    """Every record of ``topic`` from the beginning, read until ``until(records)`` holds.

    The reader assigns itself every partition and joins no consumer group: nothing to wait for
    in a group's join and leave (a broker's group coordinator stuck in one of them once held a
    test until its timeout), and nothing about a service's own groups changes. Every call to
    the broker is bounded by ``timeout``."""
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        fetch_max_wait_ms=50,
        request_timeout_ms=10_000,
    )
    records: list[ConsumerRecord[bytes, bytes]] = []
    try:
        async with asyncio.timeout(timeout):
            await consumer.start()
            consumer.assign(_partitions(topic))
            await consumer.seek_to_beginning()
            while not until(records):
                batch = await consumer.getmany(timeout_ms=200)
                for part in batch.values():
                    records.extend(part)
    except TimeoutError:
        raise AssertionError(f"{topic}: condition not met within {timeout}s; read {len(records)} records") from None
    finally:
        async with asyncio.timeout(10):
            await consumer.stop()
    return records


async def end_offsets(bootstrap: str, topic: str) -> dict[TopicPartition, int]:
    """The offset after the last record of each partition of ``topic``."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False, request_timeout_ms=10_000)
    try:
        async with asyncio.timeout(30):
            await consumer.start()
            return await consumer.end_offsets(_partitions(topic))
    finally:
        async with asyncio.timeout(10):
            await consumer.stop()


async def read_to_end(bootstrap: str, topic: str) -> list[ConsumerRecord[bytes, bytes]]:
    """Every record ``topic`` holds now. Unlike ``read_topic(until=len(r) >= n)``, it also sees
    records beyond the ones expected: each test's broker is fresh, so its offsets count records."""
    total = sum((await end_offsets(bootstrap, topic)).values())
    return await read_topic(bootstrap, topic, until=lambda records: len(records) >= total)


async def caught_up(bootstrap: str, group_id: str, *topics: str) -> bool:
    """True once ``group_id`` has committed the end offset of every partition of ``topics``: it
    has handled every record published there so far (consumers commit only after handling).

    It asks under the group's id without joining the group (it subscribes to nothing), so the
    group's members are not disturbed.
    """
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap, group_id=group_id, enable_auto_commit=False, request_timeout_ms=10_000
    )
    try:
        async with asyncio.timeout(30):
            await consumer.start()
            for topic in topics:
                ends = await consumer.end_offsets(_partitions(topic))
                for partition, end in ends.items():
                    if end > (await consumer.committed(partition) or 0):
                        return False
            return True
    finally:
        async with asyncio.timeout(10):
            await consumer.stop()


async def outbox_empty(app: FastAPI) -> bool:
    """True once the service has relayed every event it stored to Kafka."""
    return await pending_events(app.state.runtime.db) == 0


def _partitions(topic: str) -> list[TopicPartition]:
    return [TopicPartition(topic, p) for p in range(TOPIC_PARTITIONS[topic])]


def envelopes(records: list[ConsumerRecord[bytes, bytes]], event_type: str | None = None) -> list[Envelope]:
    found = [Envelope.model_validate_json(r.value) for r in records if r.value]
    return [e for e in found if event_type is None or e.event_type == event_type]


def mail_files(folder: Path, *, notices: bool = False) -> list[Path]:
    """The SMTP sink's mails, one file each, in the order it took them. Without ``notices``, the
    Art. 14 notices are left out: each actor registered with consent by a staff token (through
    the API or a CSV import) gets one first. The sink names each file ``<n>-<Message-ID>.eml``
    (``quartier.smtp_sink``), and a notice's Message-ID is ``<notice-…>``."""
    files = sorted(folder.glob("*.eml"))
    return [p for p in files if notices or not p.name.split("-", 1)[1].startswith("notice-")]


def read_mails(folder: Path, *, notices: bool = False) -> list[EmailMessage]:
    """The mails of ``mail_files``, parsed."""
    return [
        email.message_from_bytes(p.read_bytes(), policy=email.policy.default)
        for p in mail_files(folder, notices=notices)
    ]


def actor_body(**overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "name": "Caritas Fachdienst Integration Borbeck",
        "kind": "welfare_association",
        "districts": ["IV"],
        "email": "borbeck@caritas.example.org",
        "language": "de",
        "consent_to_notifications": True,
    }
    body.update(overrides)
    return body


def actor_registered(
    *districts: str, consent: bool = True, revision: int = 1, actor_id: str | None = None
) -> ActorRegistered:
    """The event of an actor registered for ``districts`` (a fresh id unless one is given)."""
    return ActorRegistered(
        actor_id=actor_id or str(uuid.uuid4()),
        revision=revision,
        kind="church_parish",
        districts=list(districts),
        language="de",
        consent_to_notifications=consent,
    )


def contact_of(snapshot: ActorSnapshot, email: str = "akteur@example.org", name: str = "Testakteur") -> ContactChanged:
    """The ``ContactChanged`` the actors service publishes with ``snapshot``: same actor, revision,
    language, consent and state, with the name and address the snapshot does not carry."""
    return ContactChanged(
        actor_id=snapshot.actor_id,
        revision=snapshot.revision,
        name=name,
        email=email,
        language=snapshot.language,
        consent_to_notifications=snapshot.consent_to_notifications,
        active=snapshot.active,
    )


def retired_actor_registered(district: str, name: str, email: str) -> Envelope:
    """An ``ActorRegistered`` of the retired version 1, with the name and the address it carried."""
    current = envelope_of(actor_registered(district))
    return current.model_copy(
        update={"event_version": "1.0", "payload": {**current.payload, "name": name, "email": email}}
    )


# A winter evening (CET, +01:00) next year: in the future and within the two years a conference
# may be scheduled ahead.
CONFERENCE_DAY = f"{datetime.now(UTC).year + 1}-03-04"


def conference_body(**overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "district": "IV",
        "title": "Integrationskonferenz Borbeck",
        "starts_at": f"{CONFERENCE_DAY}T17:00:00+01:00",
        "ends_at": f"{CONFERENCE_DAY}T20:00:00+01:00",
        "venue": {"name": "Kulturzentrum Borbeck", "address": "Musterstraße 1, 45355 Essen"},
        "agenda": ["Begrüßung", "Bericht aus dem Quartier", "Arbeitsgruppen"],
    }
    body.update(overrides)
    return body


async def assert_refused(client: httpx.AsyncClient, path: str, cases: dict[str, dict[str, Any]]) -> None:
    """POSTing each body to ``path`` answers 422 and names its field (the case's key)."""
    for field, body in cases.items():
        response = await client.post(path, json=body)
        assert response.status_code == 422, field
        assert field in response.json()["detail"][0]["loc"], (field, response.json())


S = TypeVar("S", bound=ServiceSettings)


def settings_for(cls: type[S], infra: Infrastructure, database: str, **overrides: Any) -> S:
    """A service's settings pointing at the test infrastructure, as its environment would."""
    values: dict[str, Any] = {k.lower(): v for k, v in infra.env().items()}
    values.update(mongodb_database=database, **overrides)
    return cls(**values)


@contextlib.asynccontextmanager
async def running(app: FastAPI, headers: Mapping[str, str] | None = None) -> AsyncIterator[httpx.AsyncClient]:
    """The app with its lifespan (MongoDB, Kafka consumers, outbox relay), and a client for it
    that sends ``headers`` (``infra.auth_headers()``: a coordinator's token) with every request."""
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1", headers=headers) as client:
            await app.state.runtime.kafka_connected.wait()
            yield client


class RecordingPublisher(KafkaPublisher):
    """A publisher that keeps what it was given (for tests of the relay and the consumer)."""

    def __init__(self) -> None:
        super().__init__("unused")
        self.sent: list[OutgoingMessage] = []

    async def publish(self, messages: Sequence[OutgoingMessage]) -> None:
        self.sent.extend(messages)
