"""The outbox relay against a real database: each process relays its own entries once; entries a
crashed process left behind are taken over after the grace period."""

from __future__ import annotations

import asyncio
from typing import Any

from pymongo import AsyncMongoClient

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
