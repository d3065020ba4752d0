"""The outbox relay against a real database: each process relays its own entries once; entries a
crashed process left behind are taken over after the grace period."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
from pymongo import AsyncMongoClient

from quartier_shared import outbox as outbox_module
from quartier_shared.events import ActorDeactivated
from quartier_shared.outbox import Outbox, OutboxRelay
from tests.helpers import RecordingPublisher, envelope_of


async def store(outbox: Outbox, client: AsyncMongoClient[dict[str, Any]], count: int) -> None:
    async with client.start_session() as session:
        await session.start_transaction()
        await outbox.store([envelope_of(ActorDeactivated(actor_id=f"a{i}", revision=2)) for i in range(count)], session)
        await session.commit_transaction()


async def test_two_instances_relay_only_their_own_entries_until_one_is_abandoned(
    mongo_uri: str, database_name: str
) -> None:
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(mongo_uri)
    db = client[database_name]
    first, second = Outbox(db, owner="one"), Outbox(db, owner="two", takeover_seconds=0.5)
    await first.create_indexes()
    await store(first, client, 3)
    await store(second, client, 2)
    to_kafka_one, to_kafka_two = RecordingPublisher(), RecordingPublisher()
    relay_one, relay_two = OutboxRelay(first, to_kafka_one), OutboxRelay(second, to_kafka_two)

    assert await relay_two.relay_once() == 2  # its own only, though "one"'s are pending too
    assert await relay_two.relay_once() == 0
    assert await first.pending_count() == 3

    # "one" crashed before relaying: after the grace period "two" takes its entries over.
    await asyncio.sleep(0.6)
    assert await relay_two.relay_once() == 3
    assert await relay_one.relay_once() == 0
    assert await first.pending_count() == 0
    assert len({m.value for m in to_kafka_two.sent}) == 5 and to_kafka_one.sent == []
    await client.close()


async def test_a_large_transaction_is_split_into_documents_and_relayed_in_order(
    mongo_uri: str, database_name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(outbox_module, "DOCUMENT_BYTES", 4_000)  # about six events per document
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(mongo_uri)
    outbox = Outbox(client[database_name], owner="one")
    await outbox.create_indexes()
    await store(outbox, client, 40)
    assert await outbox.collection.count_documents({}) > 1
    assert await outbox.pending_count() == 40

    to_kafka = RecordingPublisher()
    relay = OutboxRelay(outbox, to_kafka, batch_size=2)  # documents per round
    while await relay.relay_once():
        pass
    actor_ids = [json.loads(m.value or b"")["payload"]["actor_id"] for m in to_kafka.sent]
    assert actor_ids == [f"a{i}" for i in range(40)]
    assert await outbox.pending_count() == 0
    await client.close()
