"""Transactional outbox: events are stored with the change that caused them, then relayed.

``Outbox.store`` runs inside the unit of work's transaction. ``OutboxRelay`` runs in the same
process, wakes when a transaction committed (and polls as a safety net), publishes pending
entries in order, in batches, and marks them published only after Kafka has taken them. If the
process dies between the two, the batch is published again: consumers are idempotent.
"""

from __future__ import annotations

import asyncio
import contextlib
from datetime import UTC, datetime, timedelta
from typing import Any

from pymongo import ASCENDING
from pymongo.asynchronous.client_session import AsyncClientSession
from pymongo.asynchronous.database import AsyncDatabase

from .events import EVENT_TYPES, Envelope, kafka_headers
from .kafka import KafkaPublisher, OutgoingMessage
from .logging import get_logger
from .metrics import EVENTS_PUBLISHED

log = get_logger(__name__)

COLLECTION = "outbox"
RETENTION_SECONDS = 7 * 24 * 3600


class Outbox:
    """Each process relays the entries it wrote itself, so two instances of a service do not
    publish the same events; entries another process left unpublished for ``takeover_seconds``
    (it crashed, or cannot reach Kafka) are taken over by whichever relay sees them."""

    def __init__(self, db: AsyncDatabase[dict[str, Any]], owner: str, takeover_seconds: float = 10.0) -> None:
        self.collection = db[COLLECTION]
        self.owner = owner
        self.takeover_seconds = takeover_seconds
        self._wakeup = asyncio.Event()

    async def create_indexes(self) -> None:
        await self.collection.create_index("event_id", unique=True)
        await self.collection.create_index([("published", ASCENDING), ("owner", ASCENDING), ("_id", ASCENDING)])
        await self.collection.create_index([("published", ASCENDING), ("created_at", ASCENDING)])

    async def store(self, envelopes: list[Envelope], session: AsyncClientSession) -> None:
        now = datetime.now(UTC)
        await self.collection.insert_many(
            [
                {
                    "event_id": e.event_id,
                    "topic": EVENT_TYPES[e.event_type].topic,
                    "key": e.aggregate_id,
                    "envelope": e.model_dump(mode="json"),
                    "published": False,
                    "owner": self.owner,
                    "created_at": now,
                }
                for e in envelopes
            ],
            session=session,
        )

    def wake(self) -> None:
        self._wakeup.set()

    async def wait(self, seconds: float) -> None:
        """Until a transaction committed events, or ``seconds`` passed."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._wakeup.wait(), seconds)
        self._wakeup.clear()

    async def pending(self, limit: int) -> list[dict[str, Any]]:
        """This process's unpublished entries and abandoned ones, oldest first.

        Two queries rather than one with $or: SecantusDB scans the collection for a top-level $or.
        """
        cutoff = datetime.now(UTC) - timedelta(seconds=self.takeover_seconds)
        mine = self.collection.find({"published": False, "owner": self.owner}).sort("_id", ASCENDING).limit(limit)
        abandoned = self.collection.find({"published": False, "created_at": {"$lt": cutoff}}).limit(limit)
        found = {doc["_id"]: doc for doc in await mine.to_list(length=limit)}
        found.update({doc["_id"]: doc for doc in await abandoned.to_list(length=limit)})
        return [found[key] for key in sorted(found)][:limit]

    async def pending_count(self) -> int:
        return await self.collection.count_documents({"published": False})

    async def mark_published(self, ids: list[Any]) -> None:
        await self.collection.update_many(
            {"_id": {"$in": ids}}, {"$set": {"published": True, "published_at": datetime.now(UTC)}}
        )


def to_message(doc: dict[str, Any]) -> OutgoingMessage:
    envelope = Envelope.model_validate(doc["envelope"])
    return OutgoingMessage(
        topic=doc["topic"],
        key=doc["key"].encode(),
        value=envelope.model_dump_json().encode(),
        headers=kafka_headers(envelope),
    )


class OutboxRelay:
    def __init__(
        self, outbox: Outbox, publisher: KafkaPublisher, batch_size: int = 500, poll_seconds: float = 1.0
    ) -> None:
        self.outbox = outbox
        self.publisher = publisher
        self.batch_size = batch_size
        self.poll_seconds = poll_seconds

    async def run(self) -> None:
        backoff = 0.2
        while True:
            try:
                published = await self.relay_once()
                backoff = 0.2
                if published < self.batch_size:
                    await self.outbox.wait(self.poll_seconds)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # Kafka or MongoDB away: keep the events, try again later
                log.warning(
                    "outbox_relay_retrying", error=type(exc).__name__, detail=str(exc)[:200], retry_in_s=backoff
                )
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 10.0)

    async def relay_once(self) -> int:
        docs = await self.outbox.pending(self.batch_size)
        if not docs:
            return 0
        await self.publisher.publish([to_message(d) for d in docs])
        await self.outbox.mark_published([d["_id"] for d in docs])
        for d in docs:
            EVENTS_PUBLISHED.labels(d["envelope"]["event_type"]).inc()
        log.debug("outbox_relayed", count=len(docs))
        return len(docs)
