"""The raw floor: what the same broker, database and SMTP sink do for N items with plain clients
and no service logic in between.

- Kafka: N messages the size of an InvitationIssued envelope, produced without awaiting each
  (through the services' own publisher, quartier_shared.kafka.KafkaPublisher), then read by one
  consumer.
- MongoDB: N documents of that size, `insert_many` in batches of 1,000.
- SMTP: N mails the size of a real invitation mail (rendered by the notifications service's own
  code), over as many reused connections as notifications uses (SMTP_CONNECTIONS, default 4).
"""

from __future__ import annotations

import asyncio
import json
import os
import time
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import aiosmtplib
from aiokafka import AIOKafkaConsumer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from pymongo import AsyncMongoClient

from notifications.footer import Footer
from notifications.mail import Recipient, Sender, render_invitation
from quartier.embedded import Infrastructure
from quartier_shared import links
from quartier_shared.catalogue import load_catalogue
from quartier_shared.events import (
    TOPIC_PARTITIONS,
    ConferenceDetails,
    InvitationIssued,
    Venue,
    kafka_headers,
    wrap,
)
from quartier_shared.kafka import KafkaPublisher, OutgoingMessage
from quartier_shared.services import CONFERENCES

from .pipeline import DISTRICT, conference_body

FLOOR_TOPIC = "bench.floor"
FLOOR_DATABASE = "bench_floor"
MONGO_BATCH = 1_000
SENDER = Sender(name="Integrationskonferenzen Essen", email="integration@essen.example.org")


def smtp_connections() -> int:
    """What notifications uses: SMTP_CONNECTIONS from the environment, else its default of 4."""
    return int(os.environ.get("SMTP_CONNECTIONS") or 4)


def sample_details() -> ConferenceDetails:
    body = conference_body()
    catalogue = load_catalogue()
    district = catalogue.district(DISTRICT)
    assert district is not None
    return ConferenceDetails(
        conference_id=str(uuid.uuid4()),
        district=district.code,
        district_name=district.name,
        title=body["title"],
        starts_at=datetime.fromisoformat(body["starts_at"]),
        ends_at=datetime.fromisoformat(body["ends_at"]),
        timezone=catalogue.timezone,
        venue=Venue(**body["venue"]),
        agenda=body["agenda"],
    )


def sample_envelope(details: ConferenceDetails) -> tuple[bytes, list[tuple[str, bytes]]]:
    """An InvitationIssued envelope as the conferences service publishes it, and its headers."""
    event = InvitationIssued(
        invitation_id=str(uuid.uuid4()),
        conference_id=details.conference_id,
        actor_id=str(uuid.uuid4()),
        conference=details,
    )
    envelope = wrap(event, producer=CONFERENCES.name, correlation_id=f"bench-{uuid.uuid4()}")
    return envelope.model_dump_json().encode(), kafka_headers(envelope)


def sample_mail(details: ConferenceDetails) -> bytes:
    """A real invitation mail (fictional recipient), as bytes on the wire."""
    invitation_id = str(uuid.uuid4())
    token = links.sign(invitation_id, details.ends_at, Ed25519PrivateKey.generate())  # as long as a real one
    message = render_invitation(
        conference=details,
        recipient=Recipient(
            name="Benchmark-Initiative Nummer 00000", email="bench-00000@initiative.example.org", language="de"
        ),
        sender=SENDER,
        invitation_id=invitation_id,
        domain="essen.example.org",
        link=f"http://127.0.0.1:8002/rsvp/{token}",
        footer=Footer(
            unsubscribe_url=f"http://127.0.0.1:8002/unsubscribe/{token}",  # as long as a real one
            privacy_url="https://www.essen.de/datenschutz",
            contact=SENDER.email,
            district=details.district_name,
        ),
    )
    return message.as_bytes()


@dataclass(frozen=True)
class FloorResult:
    n: int
    kafka_seconds: float
    mongodb_seconds: float
    smtp_seconds: float
    message_bytes: int
    mail_bytes: int
    smtp_connections: int

    @property
    def floor_seconds(self) -> float:
        return round(self.kafka_seconds + self.mongodb_seconds + self.smtp_seconds, 3)


async def kafka_floor(bootstrap: str, n: int, value: bytes, headers: list[tuple[str, bytes]]) -> float:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        partitions = TOPIC_PARTITIONS[InvitationIssued.topic]
        await admin.create_topics([NewTopic(FLOOR_TOPIC, num_partitions=partitions, replication_factor=1)])
    finally:
        await admin.close()
    consumer = AIOKafkaConsumer(
        FLOOR_TOPIC,
        bootstrap_servers=bootstrap,
        group_id=None,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        fetch_max_wait_ms=50,
    )
    # The services' own publisher: each message sent without awaiting it, then all awaited together.
    messages = [OutgoingMessage(FLOOR_TOPIC, str(uuid.uuid4()).encode(), value, headers) for _ in range(n)]
    async with KafkaPublisher(bootstrap) as publisher:
        started = time.perf_counter()
        await publisher.publish(messages)
        produced = time.perf_counter() - started
    await consumer.start()
    try:
        started = time.perf_counter()
        read = 0
        deadline = time.monotonic() + 120 + n / 100
        while read < n:
            if time.monotonic() > deadline:
                raise TimeoutError(f"floor consumer read {read}/{n}")
            batch = await consumer.getmany(timeout_ms=200)
            read += sum(len(records) for records in batch.values())
        consumed = time.perf_counter() - started
    finally:
        await consumer.stop()
    return produced + consumed


async def mongodb_floor(uri: str, n: int, document: dict[str, Any]) -> float:
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(uri)
    try:
        collection = client[FLOOR_DATABASE]["documents"]
        docs = [{**document, "_id": str(uuid.uuid4())} for _ in range(n)]
        await client[FLOOR_DATABASE].command("ping")
        started = time.perf_counter()
        for start in range(0, n, MONGO_BATCH):
            await collection.insert_many(docs[start : start + MONGO_BATCH])
        return time.perf_counter() - started
    finally:
        await client.close()


async def smtp_floor(host: str, port: int, n: int, mail: bytes, connections: int) -> float:
    recipient = "bench-00000@initiative.example.org"

    async def worker(count: int) -> None:
        client = aiosmtplib.SMTP(hostname=host, port=port, timeout=30)
        await client.connect()
        try:
            for _ in range(count):
                await client.sendmail(SENDER.email, [recipient], mail)
        finally:
            await client.quit()

    shares = [n // connections + (1 if i < n % connections else 0) for i in range(connections)]
    started = time.perf_counter()
    await asyncio.gather(*(worker(count) for count in shares if count))
    return time.perf_counter() - started


async def run_floor(infra: Infrastructure, n: int) -> FloorResult:
    details = sample_details()
    value, headers = sample_envelope(details)
    mail = sample_mail(details)
    connections = smtp_connections()
    kafka = await kafka_floor(infra.kafka_bootstrap, n, value, headers)
    mongodb = await mongodb_floor(infra.mongodb_uri, n, json.loads(value))
    smtp = await smtp_floor(infra.smtp_host, infra.smtp_port, n, mail, connections)
    return FloorResult(
        n=n,
        kafka_seconds=round(kafka, 3),
        mongodb_seconds=round(mongodb, 3),
        smtp_seconds=round(smtp, 3),
        message_bytes=len(value),
        mail_bytes=len(mail),
        smtp_connections=connections,
    )
