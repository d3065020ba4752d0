"""Transactional outbox: events are stored with the change that caused them, then relayed.

``Outbox.store`` runs inside the unit of work's transaction and writes one document per
transaction, holding all the events it caused (a fan-out batch of 500 InvitationIssued is one
write, not 500). ``OutboxRelay`` runs in the same process, wakes when a transaction committed (and
polls as a safety net), publishes pending documents in order, and deletes them only after Kafka
has taken every event in them. If the process dies between the two, those events are published
again: consumers are idempotent.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from pymongo import ASCENDING
from pymongo.asynchronous.client_session import AsyncClientSession
from pymongo.asynchronous.database import AsyncDatabase

from .events import EVENT_TYPES, Envelope, Tombstone, kafka_headers
from .kafka import KafkaPublisher, OutgoingMessage
from .logging import get_logger
from .metrics import EVENTS_PUBLISHED
from .retry import Retry
from .wakeup import Wakeup

log = get_logger(__name__)

COLLECTION = "outbox"
# Events per outbox document are bounded by size, well below MongoDB's 16 MB document limit (500
# invitations to a conference with a long agenda could pass it).
DOCUMENT_BYTES = 4 * 1024 * 1024
# The event type a stored tombstone is counted under (metrics, logs).
TOMBSTONE = "tombstone"


class Outbox:
    """Each process relays the entries it wrote itself, so two instances of a service do not
    publish the same events; entries another process left unpublished for ``takeover_seconds``
    (it crashed, or cannot reach Kafka) are taken over by whichever relay sees them."""

    def __init__(self, db: AsyncDatabase[dict[str, Any]], owner: str, takeover_seconds: float = 10.0) -> None:
        self.db = db
        self.collection = db[COLLECTION]
        self.owner = owner
        self.takeover_seconds = takeover_seconds
        self._wakeup = Wakeup()

    async def create_indexes(self) -> None:
        await self.collection.create_index([("owner", ASCENDING), ("_id", ASCENDING)])
        await self.collection.create_index("created_at")

    async def store(
        self, envelopes: list[Envelope], session: AsyncClientSession, tombstones: Sequence[Tombstone] = ()
    ) -> None:
        """The events, then the tombstones, of one transaction, published later in this order."""
        now = datetime.now(UTC)
        entries = [*(_entry(e) for e in envelopes), *(_tombstone_entry(t) for t in tombstones)]
        docs = [
            {"owner": self.owner, "created_at": now, "count": len(part), "events": part}
            for part in _split_by_size(entries, DOCUMENT_BYTES)
        ]
        # ordered: the ids grow in this order, and the relay publishes by id
        await self.collection.insert_many(docs, ordered=True, session=session)

    def wake(self) -> None:
        self._wakeup.wake()

    async def wait(self, seconds: float) -> None:
        """Until a transaction committed events, or ``seconds`` passed."""
        await self._wakeup.wait(seconds)

    async def pending(self, limit: int) -> list[dict[str, Any]]:
        """Up to ``limit`` documents: this process's and abandoned ones, oldest first.

        Two queries rather than one with $or, for the embedded database (see ``embedded_db``).
        """
        cutoff = datetime.now(UTC) - timedelta(seconds=self.takeover_seconds)
        mine = self.collection.find({"owner": self.owner}).sort("_id", ASCENDING).limit(limit)
        abandoned = self.collection.find({"created_at": {"$lt": cutoff}}).limit(limit)
        found = {doc["_id"]: doc for doc in await mine.to_list(length=limit)}
        found.update({doc["_id"]: doc for doc in await abandoned.to_list(length=limit)})
        return [found[key] for key in sorted(found)][:limit]

    async def pending_count(self) -> int:
        return await pending_events(self.db)

    async def remove(self, ids: list[Any]) -> None:
        await self.collection.delete_many({"_id": {"$in": ids}})


async def pending_events(db: AsyncDatabase[dict[str, Any]]) -> int:
    """How many events wait in this database's outbox."""
    return sum([doc.get("count", 0) async for doc in db[COLLECTION].find({}, {"count": 1})])


async def backlog(db: AsyncDatabase[dict[str, Any]], now: datetime) -> tuple[int, float | None]:
    """How many events wait, and the age in seconds of the oldest entry (None: nothing waits);
    for ``quartier outbox status`` and the services' ``GET /operations/outbox``."""
    pending = await pending_events(db)
    oldest = await db[COLLECTION].find_one({}, {"created_at": 1}, sort=[("created_at", 1)])
    created = oldest.get("created_at") if oldest else None
    return pending, (round((now - created).total_seconds(), 1) if isinstance(created, datetime) else None)


def _entry(envelope: Envelope) -> dict[str, Any]:
    """An event as it will go to Kafka, serialised once, when it is stored."""
    return {
        "topic": EVENT_TYPES[envelope.event_type].topic,
        "key": envelope.aggregate_id,
        "event_type": envelope.event_type,
        "value": envelope.model_dump_json(),
        "headers": [[name, value.decode()] for name, value in kafka_headers(envelope)],
    }


def _tombstone_entry(tombstone: Tombstone) -> dict[str, Any]:
    """A key without a value: the relay publishes it as Kafka's tombstone."""
    return {"topic": tombstone.topic, "key": tombstone.key, "event_type": TOMBSTONE, "value": None, "headers": []}


def _split_by_size(entries: list[dict[str, Any]], limit: int) -> list[list[dict[str, Any]]]:
    parts: list[list[dict[str, Any]]] = [[]]
    size = 0
    for entry in entries:
        entry_size = len(entry["value"] or "") + 512  # the envelope, and room for topic, key and headers
        if parts[-1] and size + entry_size > limit:
            parts.append([])
            size = 0
        parts[-1].append(entry)
        size += entry_size
    return parts


def to_messages(doc: dict[str, Any]) -> list[OutgoingMessage]:
    return [
        OutgoingMessage(
            topic=e["topic"],
            key=e["key"].encode(),
            value=None if e["value"] is None else e["value"].encode(),
            headers=[(name, value.encode()) for name, value in e["headers"]],
        )
        for e in doc["events"]
    ]


class OutboxRelay:
    def __init__(
        self, outbox: Outbox, publisher: KafkaPublisher, batch_size: int = 50, poll_seconds: float = 1.0
    ) -> None:
        """``batch_size`` counts outbox documents (transactions), each with one or more events."""
        self.outbox = outbox
        self.more = False
        self.publisher = publisher
        self.batch_size = batch_size
        self.poll_seconds = poll_seconds

    async def run(self) -> None:
        # Kafka or MongoDB away: the events stay in the outbox, and the relay tries again later.
        retry = Retry(base=0.2, cap=10.0)
        while True:
            await retry.run(self.relay_once, event="outbox_relay_retrying")
            if not self.more:
                await self.outbox.wait(self.poll_seconds)

    async def relay_once(self) -> int:
        """Publish the oldest pending documents; returns how many events went to Kafka."""
        docs = await self.outbox.pending(self.batch_size)
        self.more = len(docs) == self.batch_size
        if not docs:
            return 0
        await self.publisher.publish([m for d in docs for m in to_messages(d)])
        await self.outbox.remove([d["_id"] for d in docs])
        events = [e for d in docs for e in d["events"]]
        for e in events:
            EVENTS_PUBLISHED.labels(e["event_type"]).inc()
        log.debug("outbox_relayed", count=len(events))
        return len(events)
